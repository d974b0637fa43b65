package mcp

import (
	"container/list"
	"sync"
)

// returnedMemory is how many returned DM ids the inbox remembers, to
// recognise a DM the broker delivers again because its ack was lost.
const returnedMemory = 4096

// inbox holds received DMs until the inbox tool returns them.
type inbox struct {
	mu       sync.Mutex
	unread   []Message
	have     map[string]struct{} // ids in unread
	returned map[string]*list.Element
	order    *list.List // returned ids, oldest first
}

type addResult int

const (
	added addResult = iota
	duplicate
	alreadyReturned
)

func newInbox() *inbox {
	return &inbox{have: make(map[string]struct{}), returned: make(map[string]*list.Element), order: list.New()}
}

func (b *inbox) add(m Message) addResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.returned[m.ID]; ok {
		return alreadyReturned
	}
	if _, ok := b.have[m.ID]; ok {
		return duplicate
	}
	b.have[m.ID] = struct{}{}
	b.unread = append(b.unread, m)
	return added
}

// take removes and returns up to max unread DMs, oldest first, and how
// many remain.
func (b *inbox) take(max int) ([]Message, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(max, len(b.unread))
	out := make([]Message, n)
	copy(out, b.unread[:n])
	b.unread = append(b.unread[:0], b.unread[n:]...)
	for _, m := range out {
		delete(b.have, m.ID)
		b.returned[m.ID] = b.order.PushBack(m.ID)
		if b.order.Len() > returnedMemory {
			delete(b.returned, b.order.Remove(b.order.Front()).(string))
		}
	}
	return out, len(b.unread)
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
	defer b.mu.Unlock()
	b.unread = nil
	clear(b.have)
	clear(b.returned)
	b.order.Init()
}
