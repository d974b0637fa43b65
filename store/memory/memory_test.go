package memory_test

import (
	"testing"

	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/store/memory"
	"github.com/claudemesh/claudemesh/store/storetest"
)

func TestCluster(t *testing.T) {
	storetest.RunCluster(t, func(t *testing.T) func() store.Cluster {
		c := memory.NewCluster("")
		return func() store.Cluster { return c }
	})
}
