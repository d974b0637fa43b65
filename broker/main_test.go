package broker_test

import (
	"os"
	"testing"

	"github.com/claudemesh/claudemesh/internal/testpg"
)

func TestMain(m *testing.M) { os.Exit(testpg.Run(m)) }
