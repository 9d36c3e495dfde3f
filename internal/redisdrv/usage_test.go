package redisdrv

import "testing"

func TestUsedMemory(t *testing.T) {
	info := "# Memory\r\nused_memory:1180112\r\nused_memory_human:1.13M\r\nused_memory_rss:9000\r\n"
	if n, ok := UsedMemory(info); !ok || n != 1180112 {
		t.Errorf("UsedMemory = %d, %v", n, ok)
	}
	for _, bad := range []string{"", "# Clients\r\nconnected_clients:1\r\n", "used_memory:lots\r\n"} {
		if _, ok := UsedMemory(bad); ok {
			t.Errorf("UsedMemory(%q) reported a figure", bad)
		}
	}
}
