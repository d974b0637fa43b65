package postgres_test

import (
	"testing"

	"github.com/claudemesh/claudemesh/internal/testpg"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/store/storetest"
)

func TestOps(t *testing.T) {
	storetest.RunOps(t, func(t *testing.T) store.Store { return open(t, testpg.URL(t)) })
}
