package mcp

import (
	"container/list"
	"math"
	"slices"
	"sync"
	"time"
)

// returnedMemory is how many returned DM ids the inbox remembers, to
// recognise a DM the broker delivers again because its ack was lost.
const returnedMemory = 4096

// Inbox states of an unread DM (Message.Status).
const (
	statusNew    = "new"    // not shown in the session yet
	statusPushed = "pushed" // written into the session; still returned by inbox
)

// inbox holds received DMs until the inbox tool returns them (or they are
// cleared). A DM pushed into the session stays here, marked pushed: a push
// is never the only copy.
type inbox struct {
	mu       sync.Mutex
	unread   []Message
	have     map[string]int // index in unread by id
	returned map[string]*list.Element
	order    *list.List // returned DMs (gone), oldest first
	// changed is called, without the lock, after the unread DMs changed.
	changed func()
}

type addResult int

const (
	added addResult = iota
	duplicate
	alreadyReturned // returned by the inbox tool: acknowledge it read
	alreadyCleared  // discarded by clear_inbox: acknowledge it cleared
)

// gone is a DM the inbox no longer holds, and how it left.
type gone struct {
	id      string
	cleared bool
}

func newInbox() *inbox {
	return &inbox{have: make(map[string]int), returned: make(map[string]*list.Element), order: list.New(), changed: func() {}}
}

func (b *inbox) add(m Message) addResult {
	r := b.addLocked(m)
	if r == added {
		b.changed()
	}
	return r
}

func (b *inbox) addLocked(m Message) addResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.returned[m.ID]; ok {
		if e.Value.(gone).cleared {
			return alreadyCleared
		}
		return alreadyReturned
	}
	if _, ok := b.have[m.ID]; ok {
		return duplicate
	}
	if m.Status == "" {
		m.Status = statusNew
	}
	b.have[m.ID] = len(b.unread)
	b.unread = append(b.unread, m)
	return added
}

// markPushed records that the DM id was written into the session at t.
func (b *inbox) markPushed(id string, t time.Time) {
	b.mu.Lock()
	i, ok := b.have[id]
	if ok {
		b.unread[i].Status, b.unread[i].PushedAt = statusPushed, t.UTC().Format(time.RFC3339)
	}
	b.mu.Unlock()
	if ok {
		b.changed()
	}
}

// take removes and returns up to max unread DMs, oldest first, and how
// many remain.
func (b *inbox) take(max int) ([]Message, int) {
	return b.remove(max, false)
}

// clear removes and returns every unread DM, to be discarded unread.
func (b *inbox) clear() []Message {
	out, _ := b.remove(math.MaxInt, true)
	return out
}

func (b *inbox) remove(max int, cleared bool) ([]Message, int) {
	out, left := b.removeLocked(max, cleared)
	if len(out) > 0 {
		b.changed()
	}
	return out, left
}

func (b *inbox) removeLocked(max int, cleared bool) ([]Message, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(max, len(b.unread))
	out := append([]Message{}, b.unread[:n]...)
	b.unread = slices.Delete(b.unread, 0, n)
	clear(b.have)
	for i, m := range b.unread {
		b.have[m.ID] = i
	}
	for _, m := range out {
		b.returned[m.ID] = b.order.PushBack(gone{id: m.ID, cleared: cleared})
		if b.order.Len() > returnedMemory {
			delete(b.returned, b.order.Remove(b.order.Front()).(gone).id)
		}
	}
	return out, len(b.unread)
}

// summary counts the unread DMs not shown in the session yet and names
// their senders, in order of arrival.
func (b *inbox) summary() (fresh int, from []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.unread {
		if m.Status == statusNew {
			fresh++
			if !slices.Contains(from, m.From) {
				from = append(from, m.From)
			}
		}
	}
	return fresh, from
}

func (b *inbox) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.unread)
}

// reset drops the unread DMs (they belong to an identity the server left)
// and forgets which were returned.
func (b *inbox) reset() {
	b.mu.Lock()
	b.unread = nil
	clear(b.have)
	clear(b.returned)
	b.order.Init()
	b.mu.Unlock()
	b.changed()
}

// fresh reports whether the DM id is unread and not shown in the session.
func (b *inbox) fresh(id string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	i, ok := b.have[id]
	return ok && b.unread[i].Status == statusNew
}

// takeIDs removes the unread DMs of the given ids (returned another way:
// an ask call returned these answers) and returns the ids it removed. Ids
// it does not hold yet count as returned too: when they come, add says
// so.
func (b *inbox) takeIDs(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	b.mu.Lock()
	var taken []string
	b.unread = slices.DeleteFunc(b.unread, func(m Message) bool {
		if slices.Contains(ids, m.ID) {
			taken = append(taken, m.ID)
			return true
		}
		return false
	})
	clear(b.have)
	for i, m := range b.unread {
		b.have[m.ID] = i
	}
	for _, id := range ids {
		if _, ok := b.returned[id]; ok {
			continue
		}
		b.returned[id] = b.order.PushBack(gone{id: id})
		if b.order.Len() > returnedMemory {
			delete(b.returned, b.order.Remove(b.order.Front()).(gone).id)
		}
	}
	b.mu.Unlock()
	if len(taken) > 0 {
		b.changed()
	}
	return taken
}
