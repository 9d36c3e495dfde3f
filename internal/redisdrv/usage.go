package redisdrv

import (
	"strconv"
	"strings"
)

// UsedMemory reads used_memory from the text of INFO memory; ok is false
// when it is not there.
func UsedMemory(info string) (bytes int64, ok bool) {
	for _, line := range strings.Split(info, "\n") {
		v, found := strings.CutPrefix(strings.TrimSpace(line), "used_memory:")
		if !found {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}
