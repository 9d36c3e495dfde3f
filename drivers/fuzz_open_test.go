package drivers_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/store"
)

// This fuzz target was written for issue 12 (reliability); RELIABILITY.md
// lists what it asserts. Its corpus is under testdata/fuzz.

// FuzzStoreURL: Open on any string (with a done context: nothing is
// dialled) gives a store or a typed error that never shows the password.
func FuzzStoreURL(f *testing.F) {
	for _, seed := range []string{"memory://", "memory://?max_entries=10", "redis://u:secretpw@127.0.0.1:1/0?driver=goredis",
		"redis+cluster://a:1,b:2", "redis+sentinel://h:1/m", "rediss://h:1?tls_ca=/nope", "redis://[::1", "redis://:pw@/",
		"memory://?max_bytes=-1", "\x00", "redis://h:1?client_cache=2", "redis://h:1/999999999999999999999"} {
		f.Add(seed)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel() // nothing is dialled
	f.Fuzz(func(t *testing.T, raw string) {
		s, err := drivers.Open(done, raw)
		if s != nil {
			s.Close()
		}
		if err == nil {
			return
		}
		if !errors.Is(err, drivers.ErrBadURL) && !errors.Is(err, context.Canceled) &&
			!errors.Is(err, store.ErrUnavailable) && !errors.Is(err, store.ErrConfig) {
			t.Fatalf("Open(%q) = %v: not a typed error", raw, err)
		}
		if u, perr := url.Parse(raw); perr == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && len(pw) >= 4 && strings.Contains(err.Error(), pw) {
				t.Fatalf("Open(%q): the error shows the password: %v", raw, err)
			}
		}
	})
}
