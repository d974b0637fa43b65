package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// Every store call made for a client has its failure named and answered,
// and every message has its placeholders filled.
func TestStoreOpsTable(t *testing.T) {
	a := about{mesh: "team", key: make([]byte, 32), id: "id", name: "n", session: "s", state: "pushed", ttl: time.Hour}
	for op, o := range storeOps {
		if o.what == "" || o.internal == "" {
			t.Errorf("store call %d: log %q, message %q; want both", op, o.what, o.internal)
		}
		if msg := a.fill(o.internal); strings.ContainsAny(msg, "{}") {
			t.Errorf("store call %d: message %q has a placeholder left", op, msg)
		}
	}
	for _, r := range refusals {
		if (r.code == "") != (r.msg == "") {
			t.Errorf("refusal of %v by call %d: code %q, message %q; want both or neither", r.err, r.op, r.code, r.msg)
		}
		if msg := a.fill(r.msg); strings.ContainsAny(msg, "{}") {
			t.Errorf("refusal of %v by call %d: message %q has a placeholder left", r.err, r.op, msg)
		}
	}
}

// countHandler counts the records logged through it.
type countHandler struct{ n *int }

func (h countHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (h countHandler) Handle(context.Context, slog.Record) error { *h.n++; return nil }
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler        { return h }
func (h countHandler) WithGroup(string) slog.Handler             { return h }

func TestStoreRefusal(t *testing.T) {
	broken := errors.New("disk on fire")
	tests := []struct {
		name string
		op   storeOp
		err  error
		a    about
		want *wire.Error // nil: the request goes on
		logs int
	}{
		{"no error", opEnqueue, nil, about{id: "x"}, nil, 0},
		{"a sentinel that refuses", opEnqueue, fmt.Errorf("enqueue: %w", store.ErrConflict), about{id: "m1"},
			&wire.Error{Code: wire.CodeDuplicateID, Message: "DM id m1 is already used by another DM; use a new id"}, 0},
		{"a sentinel that lets the request go on", opSessionOwner, store.ErrNotFound, about{}, nil, 0},
		{"a sentinel another call does not know", opAck, store.ErrConflict, about{},
			&wire.Error{Code: wire.CodeInternal, Message: "broker could not record the ack; the DMs will be delivered again"}, 1},
		{"a failure", opReceipt, broken, about{state: "pushed"},
			&wire.Error{Code: wire.CodeInternal, Message: "broker could not record the pushed receipt"}, 1},
		{"a name", opRedeemInvite, store.ErrConflict, about{name: `o"k`},
			&wire.Error{Code: wire.CodeNameTaken, Message: `the mesh already has a member named "o\"k" or with this key; choose another name`}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logged int
			got := storeRefusal(slog.New(countHandler{&logged}), tt.op, tt.err, tt.a)
			switch {
			case (got == nil) != (tt.want == nil):
				t.Fatalf("got %+v, want %+v", got, tt.want)
			case got != nil && !reflect.DeepEqual(*got, *tt.want):
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			if logged != tt.logs {
				t.Errorf("logged %d records, want %d", logged, tt.logs)
			}
		})
	}
}
