package bench

import (
	"runtime"
	"testing"
)

var sink []byte

// TestPeakRSS checks that the peak resident set is reset and then sees a
// 128 MiB allocation touched page by page.
func TestPeakRSS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peak RSS is read from /proc")
	}
	if !resetPeak() {
		t.Skip("/proc/self/clear_refs is not writable here")
	}
	before := peakRSS()
	sink = make([]byte, 128<<20)
	for i := 0; i < len(sink); i += 4096 {
		sink[i] = 1
	}
	after := peakRSS()
	sink = nil
	if before <= 0 || after-before < 100<<20 {
		t.Fatalf("peak %d MiB before, %d MiB after touching 128 MiB", before>>20, after>>20)
	}
	if !resetPeak() {
		t.Fatal("second reset failed")
	}
	if again := peakRSS(); again >= after {
		t.Errorf("after reset and release the peak is %d MiB, not below %d MiB", again>>20, after>>20)
	}
}
