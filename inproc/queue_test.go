package inproc_test

import (
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/inproc"
	"github.com/fheserve/fheserve/storetest"
)

func TestQueue(t *testing.T) {
	storetest.Queue(t, func(t *testing.T) fheserve.Queue { return inproc.NewQueue() })
}
