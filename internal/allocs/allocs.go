// Package allocs checks, in tests and fuzz targets, that code run on
// untrusted bytes allocates no more than a stated bound.
package allocs

import (
	"runtime"
	"testing"
)

// Bound runs f and fails tb if f allocated more than limit bytes in all.
// It counts the process's allocations, so run it where nothing else
// allocates meanwhile: in a fuzz target (each fuzzing worker is a process
// that runs one input at a time) or a test that is not parallel.
func Bound(tb testing.TB, limit uint64, f func()) {
	tb.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > limit {
		tb.Fatalf("allocated %d bytes, more than the bound of %d", n, limit)
	}
}
