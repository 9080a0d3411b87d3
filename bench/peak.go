package bench

import (
	"os"
	"runtime/debug"

	"github.com/fheserve/fheserve/internal/procfs"
)

// resetPeak resets the process's peak resident set (Linux: writing 5 to
// /proc/self/clear_refs), so that peakRSS measures one workload. The reset
// sets the peak to the current resident set, so the memory an earlier
// workload left to the Go runtime is returned to the system first. It
// reports whether it could.
func resetPeak() bool {
	debug.FreeOSMemory()
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS is the process's peak resident set in bytes since the last
// resetPeak (VmHWM in /proc/self/status), or 0 where it is not known.
func peakRSS() int64 {
	return procfs.Bytes("/proc/self/status", "VmHWM")
}
