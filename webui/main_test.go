package webui_test

import (
	"testing"

	"github.com/karat-go/karat/internal/redistest"
)

// TestMain stops the Redis servers the tests started.
func TestMain(m *testing.M) { redistest.Main(m) }
