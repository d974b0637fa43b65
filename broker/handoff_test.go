package broker

import (
	"fmt"
	"slices"
	"testing"

	"github.com/claudemesh/claudemesh/store"
)

// The rules by which a stored DM goes straight to the pump, or the pump
// reads the store instead (see beginCommit).
func TestHandOffRules(t *testing.T) {
	msg := func(id string) store.Message { return store.Message{ID: id} }
	send := func(sc *sessionConn, id string) {
		sc.beginCommit()
		sc.endCommit(msg(id), true)
	}
	take := func(t *testing.T, sc *sessionConn, wantIDs []string, wantRescan bool) {
		t.Helper()
		handed, rescan := sc.takeHanded(nil)
		var ids []string
		for _, m := range handed {
			ids = append(ids, m.ID)
		}
		if !slices.Equal(ids, wantIDs) || rescan != wantRescan {
			t.Errorf("handed %v, rescan %v; want %v, %v", ids, rescan, wantIDs, wantRescan)
		}
		select {
		case <-sc.kick:
		default:
			t.Error("the pump was not woken")
		}
	}
	newConn := func(t *testing.T) *sessionConn {
		sc := &sessionConn{kick: make(chan struct{}, 1), rescan: true}
		send(sc, "backlog-race")
		take(t, sc, nil, true) // a new connection reads its backlog first
		return sc
	}

	t.Run("one after another, in order", func(t *testing.T) {
		sc := newConn(t)
		send(sc, "a")
		send(sc, "b")
		take(t, sc, []string{"a", "b"}, false)
	})
	t.Run("overlapping sends are read from the store", func(t *testing.T) {
		sc := newConn(t)
		sc.beginCommit()
		sc.beginCommit()
		sc.endCommit(msg("b"), true)
		take(t, sc, nil, true) // the pump may take what there is early
		sc.endCommit(msg("a"), true)
		take(t, sc, nil, true)
		send(sc, "c") // the overlap is over
		take(t, sc, []string{"c"}, false)
	})
	t.Run("a send still committing does not hold back earlier ones", func(t *testing.T) {
		sc := newConn(t)
		send(sc, "a")
		sc.beginCommit()
		take(t, sc, []string{"a"}, false)
		sc.endCommit(msg("b"), true)
		take(t, sc, []string{"b"}, false)
	})
	t.Run("a failed or repeated store call, a wake", func(t *testing.T) {
		sc := newConn(t)
		sc.beginCommit()
		sc.endCommit(msg("a"), false)
		take(t, sc, nil, true)
		send(sc, "b")
		sc.wake()
		send(sc, "c") // the read covers it
		take(t, sc, []string{"b"}, true)
	})
	t.Run("bounded", func(t *testing.T) {
		sc := newConn(t)
		for i := range handOffMax + 1 {
			send(sc, fmt.Sprint(i))
		}
		handed, rescan := sc.takeHanded(nil)
		if len(handed) != handOffMax || !rescan {
			t.Errorf("%d handed, rescan %v; want %d, true", len(handed), rescan, handOffMax)
		}
	})
}
