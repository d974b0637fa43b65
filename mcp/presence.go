package mcp

import (
	"strings"

	"github.com/claudemesh/claudemesh/wire"
)

// A peer's presence, in the tools' words. The broker names a session's
// lease state for its own bookkeeping (wire.Peer.State); the tools name it
// for the model, by what it means for a DM:
//
//	broker (wire)  tools         meaning
//	online         online        connected now: a DM is delivered at once
//	grace          reconnecting  its connection dropped moments ago; it keeps
//	                             its place for the broker's grace period,
//	                             then it is away
//	offline        away          not connected, seen within the broker's TTL
//
// DMs to reconnecting and away peers are queued until they return. A state
// the tools do not know counts as away. presence is the one place where the
// broker's word becomes the tools' word: list_peers' state and lines and
// the peers that send_dm's refusals list all go through it (PeerInfo.State's
// schema description spells the same three words).
const (
	presenceOnline       = "online"
	presenceReconnecting = "reconnecting"
	presenceAway         = "away"
)

// presence returns the tools' word for the lease state of a peer.
func presence(state string) string {
	switch state {
	case wire.PeerOnline:
		return presenceOnline
	case wire.PeerGrace:
		return presenceReconnecting
	}
	return presenceAway
}

// presenceHeading is a presence word that starts a sentence.
func presenceHeading(word string) string {
	return strings.ToUpper(word[:1]) + word[1:]
}
