package allocs

import "testing"

type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Fatalf(string, ...any) { r.failed = true }

var sink []byte

func TestBound(t *testing.T) {
	r := &recorder{TB: t}
	Bound(r, 1<<20, func() { sink = make([]byte, 4<<20) })
	if !r.failed {
		t.Error("4 MiB passed a bound of 1 MiB")
	}
	r = &recorder{TB: t}
	Bound(r, 1<<20, func() { sink = make([]byte, 1<<10) })
	if r.failed {
		t.Error("1 KiB failed a bound of 1 MiB")
	}
}
