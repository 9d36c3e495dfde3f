package conformance

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/internal/redistest"
	"github.com/karat-go/karat/store"
)

// fakeT is a tb that records failures instead of failing the test, so that
// a test can prove CheckScript fails on a wrong script pair.
type fakeT struct {
	mu     sync.Mutex
	failed bool
	msgs   []string
}

func (f *fakeT) Helper()             {}
func (f *fakeT) Logf(string, ...any) {}
func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = true
	f.msgs = append(f.msgs, fmt.Sprintf(format, args...))
}
func (f *fakeT) Fatalf(format string, args ...any) { f.Errorf(format, args...); runtime.Goexit() }
func (f *fakeT) FailNow()                          { f.Errorf("FailNow"); runtime.Goexit() }

// runCheck runs one CheckScript case against h on a fakeT and returns it.
func runCheck(h Harness, s *store.Script, c ScriptCase) *fakeT {
	f := &fakeT{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		checkScriptCase(f, h, s, c)
	}()
	<-done
	return f
}

// testMemoryHarness is the memory target as the suite sees it: one store,
// a fake clock.
type testMemoryHarness struct {
	clock *memstore.FakeClock
	s     *memstore.Store
}

func newTestMemoryHarness() *testMemoryHarness {
	clock := memstore.NewFakeClock(time.Date(2040, 1, 2, 3, 4, 5, 0, time.UTC))
	return &testMemoryHarness{clock: clock, s: memstore.New(&memstore.Options{Clock: clock})}
}

func (h *testMemoryHarness) MakeStore(context.Context) (store.Store, error) { return h.s, nil }
func (h *testMemoryHarness) Capabilities() []string                         { return []string{store.CapScan, store.CapStats} }
func (h *testMemoryHarness) Close()                                         { h.s.Close() }
func (h *testMemoryHarness) SetNow(t time.Time)                             { h.clock.Set(t) }
func (h *testMemoryHarness) Advance(d time.Duration)                        { h.clock.Advance(d) }

// testRedisHarness opens stores by URL on a real server, without a Clock.
type testRedisHarness struct {
	url    string
	mu     sync.Mutex
	stores []store.Store
}

func (h *testRedisHarness) MakeStore(ctx context.Context) (store.Store, error) {
	s, err := drivers.Open(ctx, h.url)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.stores = append(h.stores, s)
	h.mu.Unlock()
	return s, nil
}
func (h *testRedisHarness) Capabilities() []string { return []string{store.CapScan, store.CapStats} }
func (h *testRedisHarness) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.stores {
		s.Close()
	}
}

func setWithTTL(name, lua string, goTTL time.Duration) *store.Script {
	return store.NewScript(name, lua, func(v store.ScriptView, keys, _ []string) (store.Value, error) {
		if err := v.Set(keys[0], []byte("v"), goTTL); err != nil {
			return store.Value{}, err
		}
		return store.IntValue(1), nil
	})
}

var (
	// goTTLLonger: Lua keeps the key 60 s, Go 60.5 s.
	goTTLLonger = setWithTTL("go-ttl-longer", `redis.call('SET', KEYS[1], 'v', 'PX', 60000) return 1`, 60500*time.Millisecond)
	// luaTTLLonger: Lua keeps the key 60.5 s, Go 60 s.
	luaTTLLonger = setWithTTL("lua-ttl-longer", `redis.call('SET', KEYS[1], 'v', 'PX', 60500) return 1`, 60*time.Second)
	// sameTTL: both bodies agree.
	sameTTL = setWithTTL("same-ttl", `redis.call('SET', KEYS[1], 'v', 'PX', 60000) return 1`, 60*time.Second)
	// undeclaredWrite: the Lua body also writes a key it did not declare, in
	// the same hash tag.
	undeclaredWrite = setWithTTL("undeclared-write", `redis.call('SET', KEYS[1], 'v', 'PX', 60000)
redis.call('SET', KEYS[1] .. ':extra', 'x')
return 1`, 60*time.Second)
	// otherResult: the bodies return different results.
	otherResult = store.NewScript("other-result", `return 1`, func(store.ScriptView, []string, []string) (store.Value, error) {
		return store.IntValue(2), nil
	})
)

func oneKey(name string) ScriptCase { return ScriptCase{Name: name, Keys: []string{"k"}} }

func expectVerdict(t *testing.T, h Harness, s *store.Script, wantFail bool, wantMsg string) {
	t.Helper()
	f := runCheck(h, s, oneKey(s.Name()))
	msgs := strings.Join(f.msgs, "\n")
	switch {
	case wantFail && !f.failed:
		t.Errorf("CheckScript passed %s, a wrong script pair", s.Name())
	case !wantFail && f.failed:
		t.Errorf("CheckScript failed %s, a right script pair:\n%s", s.Name(), msgs)
	case wantFail && !strings.Contains(msgs, wantMsg):
		t.Errorf("CheckScript failed %s, but not saying %q:\n%s", s.Name(), wantMsg, msgs)
	}
}

// TestCheckScriptCatchesTTLDifference (issue 5, item 3a): on a server
// without a Clock, a TTL of 60 s against 60.5 s fails.
func TestCheckScriptCatchesTTLDifference(t *testing.T) {
	srv := redistest.Single(t)
	h := &testRedisHarness{url: srv.URL}
	defer h.Close()
	expectVerdict(t, h, sameTTL, false, "")
	expectVerdict(t, h, luaTTLLonger, true, "TTL")
	expectVerdict(t, h, goTTLLonger, true, "TTL")
}

// TestCheckScriptCatchesUndeclaredWrite (issue 5, item 3b): a Lua body that
// writes a key it did not declare fails, on a server and on the memory
// target, and the key is not left behind.
func TestCheckScriptCatchesUndeclaredWrite(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		h := newTestMemoryHarness()
		defer h.Close()
		expectVerdict(t, h, undeclaredWrite, true, ":extra")
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Single(t)
		h := &testRedisHarness{url: srv.URL}
		defer h.Close()
		s, err := h.MakeStore(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		sc, _ := store.Capability[store.Scanner](s)
		count := func() int {
			n := 0
			if err := sc.Scan(context.Background(), "{karat-conformance-", func(keys []string) error {
				for _, k := range keys {
					if strings.HasSuffix(k, ":extra") {
						n++
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := count()
		expectVerdict(t, h, undeclaredWrite, true, ":extra")
		if after := count(); after != before {
			t.Errorf("the undeclared key was left behind (%d before, %d after)", before, after)
		}
	})
}

// TestCheckScriptRunsLuaOnMemory (issue 5, item 3c): on the memory target,
// bodies that disagree fail, without a Redis server.
func TestCheckScriptRunsLuaOnMemory(t *testing.T) {
	h := newTestMemoryHarness()
	defer h.Close()
	expectVerdict(t, h, sameTTL, false, "")
	expectVerdict(t, h, otherResult, true, "results differ")
	expectVerdict(t, h, luaTTLLonger, true, "TTL")
	expectVerdict(t, h, goTTLLonger, true, "TTL")
	if f := runCheck(h, casScript, ScriptCase{Name: "cas", Keys: []string{"counter", "audit"}, Args: []string{"0", "60000", "a"}}); f.failed {
		t.Errorf("CheckScript failed casScript, a right pair: %s", f.msgs)
	}
}
