package conformance

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/session"
	"github.com/karat-go/karat/store"
)

var sessionCases = []storeCase{
	{"ScriptsAgree", testSessionScripts},
	{"Lifecycle", testSessionLifecycle},
	{"HashedAtRest", testSessionHashedAtRest},
	{"NoResurrection", testSessionNoResurrection},
	{"NoLostUpdate", testSessionNoLostUpdate},
	{"NoLostUpdateAcrossProcesses", testSessionNoLostUpdateAcrossProcesses},
	{"RotationGrace", testSessionRotationGrace},
	{"IdleVsAbsolute", testSessionIdleVsAbsolute},
	{"MultiDevice", testSessionMultiDevice},
	{"StrictTokens", testSessionStrictTokens},
	{"HostileIDs", testSessionHostileIDs},
	{"RevocationSeenByOtherInstance", testSessionRevocationSeen},
	{"SecretRotation", testSessionSecretRotation},
	{"Stats", testSessionStats},
}

// RunSession runs the session layer's cases against stores from
// newHarness, each on a harness of its own. The layer runs on a fake clock
// of its own (session.Options.Clock), which decides every deadline, so the
// timeout cases run on every target; on a harness with a Clock the store's
// TTLs are moved along with it.
func RunSession(t *testing.T, newHarness HarnessMaker) {
	t.Helper()
	for _, c := range sessionCases {
		t.Run(c.name, func(t *testing.T) {
			c.run(newEnv(t, newHarness))
		})
	}
}

// sessionStart is where the layer's fake clock starts in every case.
var sessionStart = time.Date(2041, time.March, 4, 5, 6, 7, 0, time.UTC)

// sessionSecrets are the HMAC keys the cases use, newest first.
var sessionSecrets = [][]byte{[]byte("conformance secret number one, 32+ bytes long"), []byte("conformance secret number two, 32+ bytes long")}

// sessionWorld is a case's session layer: the layer's clock, shared by every
// Manager the case makes.
type sessionWorld struct {
	*env
	clock *memstore.FakeClock
}

func newSessionWorld(e *env) *sessionWorld {
	return &sessionWorld{env: e, clock: memstore.NewFakeClock(sessionStart)}
}

// manager returns a Manager over s (the case's store if nil) under the
// case's namespace and clock; opts may set the rest.
func (w *sessionWorld) manager(s store.Store, opts *session.Options) *session.Manager {
	w.t.Helper()
	if s == nil {
		s = w.s
	}
	o := session.Options{}
	if opts != nil {
		o = *opts
	}
	o.Namespace = w.ns
	o.Clock = w.clock
	if o.Shards == 0 {
		o.Shards = 8
	}
	m, err := session.New(s, sessionSecrets, &o)
	require.NoError(w.t, err)
	return m
}

// advance moves the layer's clock by d, and the store's key expiry with it
// on a harness with a Clock (on a real server, keys the layer considers
// ended stay until their real TTL: the layer's clock decides).
func (w *sessionWorld) advance(d time.Duration) {
	w.clock.Advance(d)
	if c, ok := w.env.clock(); ok {
		c.Advance(d)
	}
}

// dump returns every key under the case's namespace with what it holds
// (a string's value, or a hash's fields and values), read through the
// store's Scanner.
func (w *sessionWorld) dump() map[string]string {
	w.t.Helper()
	sc, ok := store.Capability[store.Scanner](w.s)
	if !ok {
		w.t.Skip("the store has no Scanner: cannot list what the layer wrote")
	}
	var keys []string
	require.NoError(w.t, sc.Scan(w.ctx, w.ns.Prefix(), func(batch []string) error {
		keys = append(keys, batch...)
		return nil
	}))
	out := make(map[string]string, len(keys))
	for _, k := range keys {
		v, err := w.s.Get(w.ctx, k)
		switch {
		case err == nil:
			out[k] = string(v)
		case errors.Is(err, store.ErrWrongType):
			h, err := w.s.HGetAll(w.ctx, k)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			require.NoError(w.t, err)
			fields := make([]string, 0, len(h))
			for f, v := range h {
				fields = append(fields, f+"="+string(v))
			}
			slices.Sort(fields)
			out[k] = strings.Join(fields, "\n")
		case errors.Is(err, store.ErrNotFound):
		default:
			require.NoError(w.t, err)
		}
	}
	return out
}

// sameDump fails unless the two dumps hold the same keys and values, naming
// (shortened) the keys that differ.
func (w *sessionWorld) sameDump(before, after map[string]string, what string) {
	w.t.Helper()
	short := func(s string) string {
		if len(s) > 200 {
			return s[:200] + "..."
		}
		return s
	}
	var diffs []string
	for k, v := range before {
		if a, ok := after[k]; !ok {
			diffs = append(diffs, "gone: "+short(k))
		} else if a != v {
			diffs = append(diffs, "changed: "+short(k)+" from "+short(v)+" to "+short(a))
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			diffs = append(diffs, "new: "+short(k)+" = "+short(after[k]))
		}
	}
	if len(diffs) > 0 {
		w.t.Fatalf("%s: %d keys differ: %v", what, len(diffs), diffs)
	}
}
