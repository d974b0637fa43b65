package broker

import (
	"context"
	"time"

	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// serve runs the connection: handshake, then the read loop. It returns
// when the connection is over and its goroutines have exited.
func (c *conn) serve() {
	go c.writer()
	var pumpDone chan struct{}
	defer func() {
		c.shutdown(nil)
		<-c.writerDone
		if pumpDone != nil {
			<-pumpDone
		}
	}()

	defer func() {
		if c.attached {
			c.leave()
		}
	}()
	if !c.handshake() {
		return
	}

	pumpDone = make(chan struct{})
	go func() {
		defer close(pumpDone)
		c.pump()
	}()
	c.wake()

	c.watchLiveness()
	for {
		f, ok := c.next()
		if !ok {
			return
		}
		switch f := f.(type) {
		case wire.Bye:
			c.bye = &f
			c.shutdown(nil)
			return
		case wire.Send:
			c.handleSend(f)
		case wire.Ack:
			c.handleAck(f)
		case wire.Receipt:
			c.handleReceipt(f)
		case wire.PeersRequest:
			c.handlePeers(f)
		case wire.StatusRequest:
			c.handleStatus(f)
		case wire.Hello:
			c.reply(wire.Errorf(wire.CodeBadFrame, "hello already accepted on this connection"))
		default:
			c.reply(wire.Errorf(wire.CodeBadFrame, "a client does not send %s frames", f.Type()))
		}
	}
}

func (c *conn) session(seen time.Time) store.Session {
	return store.Session{
		Mesh:       c.hello.Mesh,
		PublicKey:  c.hello.Key,
		SessionID:  c.hello.SessionID,
		Name:       c.hello.Name,
		ProjectDir: c.hello.ProjectDir,
		FirstSeen:  seen,
		LastSeen:   seen,
		Member:     c.member,
	}
}

// leave ends the connection's hold on its session: the session goes to
// grace, or offline at once after a bye.
func (c *conn) leave() {
	if !c.s.release(c, c.bye != nil) {
		return // replaced: the new connection owns the session
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if c.bye != nil && c.bye.Forget {
		gone, err := c.s.cfg.Store.ForgetSession(ctx, c.hello.Mesh, c.hello.Key, c.s.cfg.Now())
		if err != nil {
			c.log.Warn("forget session", "err", err)
		}
		c.log.Info("session left and was forgotten", "forgotten", gone)
		return
	}
	if err := c.s.cfg.Store.UpsertSession(ctx, c.session(c.s.cfg.Now())); err != nil {
		c.log.Warn("record last seen", "err", err)
	}
	if c.bye != nil {
		c.log.Info("session left")
	} else {
		c.log.Info("session connection lost; in grace", "grace", c.s.cfg.Grace)
	}
}
