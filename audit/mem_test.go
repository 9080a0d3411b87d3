package audit_test

import (
	"testing"

	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/audit/audittest"
)

func TestMemStore(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audit.Store { return audit.NewMemStore() })
}
