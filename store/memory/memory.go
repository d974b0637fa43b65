// Package memory is the store.Cluster of a broker that is alone: presence
// and events kept in the process's memory. A broker on the embedded SQLite
// store uses it; brokers sharing PostgreSQL use store/postgres instead.
package memory

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/claudemesh/claudemesh/store"
)

// Cluster is a store.Cluster in memory. The zero value is not usable: call
// NewCluster, or NewClusterWithToken.
type Cluster struct {
	mu        sync.Mutex
	token     string
	epoch     int64
	leases    map[leaseKey]store.Lease // DroppedAt as recorded; State unset
	heartbeat map[string]time.Time
	subs      map[*subscriber]struct{}
}

type leaseKey struct {
	mesh string
	key  string
}

var _ store.Cluster = (*Cluster)(nil)

// NewCluster returns an empty cluster whose credential is token (a random
// one when token is "").
func NewCluster(token string) *Cluster {
	if token == "" {
		b := make([]byte, 32)
		rand.Read(b)
		token = hex.EncodeToString(b)
	}
	return &Cluster{
		token:     token,
		leases:    make(map[leaseKey]store.Lease),
		heartbeat: make(map[string]time.Time),
		subs:      make(map[*subscriber]struct{}),
	}
}

// Heartbeat implements store.Cluster.
func (c *Cluster) Heartbeat(_ context.Context, node string, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.After(c.heartbeat[node]) {
		c.heartbeat[node] = now
	}
	return nil
}

// judge returns l with its state at lt. c.mu must be held.
func (c *Cluster) judge(l store.Lease, lt store.LeaseTimes) store.Lease {
	return lt.Judge(l, c.heartbeat[l.Node])
}

func keyOf(mesh string, key []byte) leaseKey { return leaseKey{mesh, string(key)} }

// Claim implements store.Cluster.
func (c *Cluster) Claim(_ context.Context, l store.Lease, standby bool, lt store.LeaseTimes) (store.Lease, int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var prev store.Lease
	if old, ok := c.leases[keyOf(l.Mesh, l.Key)]; ok {
		if old = c.judge(old, lt); old.State != store.LeaseOffline {
			prev = old
			if standby && old.Instance != l.Instance {
				return prev, 0, store.ErrLeaseHeld
			}
		}
	}
	c.epoch++
	l.Epoch, l.DroppedAt, l.State = c.epoch, time.Time{}, ""
	l.Key, l.Member = bytes.Clone(l.Key), bytes.Clone(l.Member)
	c.leases[keyOf(l.Mesh, l.Key)] = l
	return prev, l.Epoch, nil
}

// Release implements store.Cluster.
func (c *Cluster) Release(_ context.Context, mesh string, key []byte, epoch int64, now time.Time, bye bool) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := keyOf(mesh, key)
	l, ok := c.leases[k]
	switch {
	case !ok || l.Epoch != epoch:
		return false, nil
	case bye:
		delete(c.leases, k)
	case !l.DroppedAt.IsZero():
		return false, nil
	default:
		l.DroppedAt = now
		c.leases[k] = l
	}
	return true, nil
}

// Lease implements store.Cluster.
func (c *Cluster) Lease(_ context.Context, mesh string, key []byte, lt store.LeaseTimes) (store.Lease, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.leases[keyOf(mesh, key)]
	if !ok {
		return store.Lease{}, store.ErrNotFound
	}
	return c.judge(l, lt), nil
}

// Leases implements store.Cluster.
func (c *Cluster) Leases(_ context.Context, mesh string, lt store.LeaseTimes) ([]store.Lease, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []store.Lease
	for k, l := range c.leases {
		if k.mesh != mesh {
			continue
		}
		if l = c.judge(l, lt); l.State != store.LeaseOffline {
			out = append(out, l)
		}
	}
	return out, nil
}

// ReleaseNode implements store.Cluster.
func (c *Cluster) ReleaseNode(_ context.Context, node string, at time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, l := range c.leases {
		if l.Node == node && l.DroppedAt.IsZero() {
			l.DroppedAt = at
			c.leases[k] = l
		}
	}
	return nil
}

// NodeLeases implements store.Cluster.
func (c *Cluster) NodeLeases(_ context.Context, node string, lt store.LeaseTimes) ([]store.Lease, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []store.Lease
	for _, l := range c.leases {
		if l = c.judge(l, lt); l.Node == node && l.State != store.LeaseOffline {
			out = append(out, l)
		}
	}
	return out, nil
}

// Count returns how many leases are online and in grace, in every mesh.
func (c *Cluster) Count(lt store.LeaseTimes) (online, grace int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.leases {
		switch c.judge(l, lt).State {
		case store.LeaseOnline:
			online++
		case store.LeaseGrace:
			grace++
		}
	}
	return online, grace
}

// DropLeases implements store.Cluster.
func (c *Cluster) DropLeases(_ context.Context, mesh string, member []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, l := range c.leases {
		if k.mesh == mesh && bytes.Equal(l.Member, member) {
			delete(c.leases, k)
		}
	}
	return nil
}

// SweepLeases implements store.Cluster.
func (c *Cluster) SweepLeases(_ context.Context, lt store.LeaseTimes) ([]store.Lease, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var gone []store.Lease
	for k, l := range c.leases {
		if l = c.judge(l, lt); l.State == store.LeaseOffline {
			delete(c.leases, k)
			gone = append(gone, l)
		}
	}
	return gone, nil
}

// Token implements store.Cluster.
func (c *Cluster) Token(context.Context) (string, error) { return c.token, nil }

// subscriber is one Listen call: events queue for it, and when its queue
// overflows the events are replaced by one resync.
type subscriber struct {
	mu     sync.Mutex
	queue  []store.Event
	lost   bool
	signal chan struct{}
}

// maxQueued bounds a listener's queue of events.
const maxQueued = 1024

// Publish implements store.Cluster. It never waits for a listener.
func (c *Cluster) Publish(_ context.Context, e store.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.subs {
		s.mu.Lock()
		if len(s.queue) < maxQueued {
			s.queue = append(s.queue, e)
		} else {
			s.lost = true
		}
		s.mu.Unlock()
		select {
		case s.signal <- struct{}{}:
		default:
		}
	}
	return nil
}

// Listen implements store.Cluster.
func (c *Cluster) Listen(ctx context.Context, f func(store.Event)) error {
	s := &subscriber{signal: make(chan struct{}, 1)}
	c.mu.Lock()
	c.subs[s] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.subs, s)
		c.mu.Unlock()
	}()
	f(store.Event{Kind: store.EventResync})
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.signal:
		}
		s.mu.Lock()
		queue, lost := s.queue, s.lost
		s.queue, s.lost = nil, false
		s.mu.Unlock()
		if lost {
			queue = []store.Event{{Kind: store.EventResync}}
		}
		for _, e := range queue {
			f(e)
		}
	}
}
