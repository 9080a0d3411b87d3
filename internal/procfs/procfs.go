// Package procfs reads the figures fheserve needs from Linux's /proc.
package procfs

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// Bytes returns the value of the line "field: N kB" of file (such as
// /proc/meminfo's MemTotal or /proc/self/status's VmHWM) in bytes, or 0
// when the file or the field is missing or unreadable (not Linux).
func Bytes(file, field string) int64 {
	f, err := os.Open(file)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}
