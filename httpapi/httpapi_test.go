package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/session"
	"github.com/karat-go/karat/store"
)

// switchable is a memory store whose Ping can be made to fail, to drive
// the health monitor through a loss and a recovery on a fake clock. The
// real-server version of this (a Redis killed and restarted) is in
// cmd/karat's end-to-end tests.
type switchable struct {
	store.Store
	down atomic.Bool
}

func (s *switchable) Ping(ctx context.Context) error {
	if s.down.Load() {
		return fmt.Errorf("%w: test: connection refused", store.ErrUnavailable)
	}
	return s.Store.Ping(ctx)
}

func TestHealthLossAndRecovery(t *testing.T) {
	s := &switchable{Store: memstore.New(nil)}
	defer s.Close()
	var logs bytes.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := NewMetrics()
	h := NewHealth(s, &HealthOptions{
		Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
		Metrics: m,
		Now:     func() time.Time { return now },
	})
	ctx := context.Background()
	if st := h.Check(ctx); !st.Up {
		t.Fatalf("up store reported down: %+v", st)
	}
	s.down.Store(true)
	if st := h.Check(ctx); st.Up || st.Error == "" {
		t.Fatalf("down store reported %+v", st)
	}
	now = now.Add(1500 * time.Millisecond)
	h.Check(ctx) // still down: no second loss line
	s.down.Store(false)
	now = now.Add(1500 * time.Millisecond)
	if st := h.Check(ctx); !st.Up {
		t.Fatalf("recovered store reported %+v", st)
	}
	out := logs.String()
	if n := strings.Count(out, "store unreachable"); n != 1 {
		t.Errorf("%d loss lines, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "store reachable again") || !strings.Contains(out, "down_for=3s") {
		t.Errorf("no recovery line with down_for=3s:\n%s", out)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "karat_store_up 1") {
		t.Errorf("metrics after recovery lack karat_store_up 1")
	}
}

// TestReadyzBoundedByTimeout: a store that hangs makes /readyz answer 503
// once the ping's timeout passes, not when the store wakes up.
func TestReadyzBoundedByTimeout(t *testing.T) {
	s := &hanging{Store: memstore.New(nil)}
	defer s.Close()
	h := NewHealth(s, &HealthOptions{Timeout: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	rec := httptest.NewRecorder()
	start := time.Now()
	h.Readyz(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("readyz on a hanging store: %d", rec.Code)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("readyz took %v", el)
	}
}

type hanging struct{ store.Store }

func (h *hanging) Ping(ctx context.Context) error {
	<-ctx.Done()
	return fmt.Errorf("%w: %w", store.ErrUnavailable, ctx.Err())
}

// TestObserveNeverLogsSecrets: a request carrying a token in every place a
// client might put one leaves none of them in the log line.
func TestObserveNeverLogsSecrets(t *testing.T) {
	var logs bytes.Buffer
	r := mux.NewRouter()
	r.Use(TagRoute)
	r.HandleFunc("/v1/things/{id}", func(w http.ResponseWriter, r *http.Request) {
		setLogUser(r, "user-1", "shop")
		setLogError(r, errors.New("an error"))
		w.WriteHeader(http.StatusTeapot)
	})
	h := Observe(slog.New(slog.NewJSONHandler(&logs, nil)), NewMetrics())(r)
	const secret = "deadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef"
	req := httptest.NewRequest("POST", "/v1/things/7?token="+secret, strings.NewReader(`{"password":"`+secret+`"}`))
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Cookie", "karat_session="+secret)
	req.Header.Set("X-Api-Key", secret)
	h.ServeHTTP(httptest.NewRecorder(), req)
	out := logs.String()
	if strings.Contains(out, secret) || strings.Contains(out, secret[:16]) {
		t.Fatalf("a secret reached the log: %s", out)
	}
	for _, want := range []string{`"route":"/v1/things/{id}"`, `"status":418`, `"user":"user-1"`, `"err":"an error"`, `"path":"/v1/things/7"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log line lacks %s: %s", want, out)
		}
	}
}

func TestStoreDown(t *testing.T) {
	for _, c := range []struct {
		err  error
		down bool
	}{
		{fmt.Errorf("x: %w", store.ErrUnavailable), true},
		{store.ErrClosed, true},
		{context.DeadlineExceeded, true},
		{store.ErrNotFound, false},
		{errors.New("other"), false},
	} {
		if got := StoreDown(c.err); got != c.down {
			t.Errorf("StoreDown(%v) = %v", c.err, got)
		}
	}
}

// TestObserveBoundsLabelsAndLines: arbitrary methods share one metrics
// label and a huge path is cut in the log line.
func TestObserveBoundsLabelsAndLines(t *testing.T) {
	var logs bytes.Buffer
	m := NewMetrics()
	h := Observe(slog.New(slog.NewJSONHandler(&logs, nil)), m)(http.NotFoundHandler())
	for _, meth := range []string{"FOO", "BAR", "BAZ"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(meth, "/"+strings.Repeat("p", 10<<10), nil))
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if !strings.Contains(rec.Body.String(), `karat_http_requests_total{code="404",method="other",route="unmatched"} 3`) {
		t.Errorf("arbitrary methods are not folded into one label")
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if len(line) > 2048 {
			t.Errorf("a log line of %d bytes", len(line))
		}
	}
}

// TestDataMemoFollowsUpdates: the decoded session data is kept per session
// version, so an Update is seen at once, and the memo stays bounded.
func TestDataMemoFollowsUpdates(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(nil)
	defer s.Close()
	m, err := session.New(s, [][]byte{[]byte("a memo test secret of 32 bytes or more")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := m.Create(ctx, "ann", "shop", session.Meta{Data: SessionData{Role: "clerk", Name: "Ann"}})
	if err != nil {
		t.Fatal(err)
	}
	var d dataMemo
	sess, err := m.Validate(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := d.get(sess); err != nil || got.Role != "clerk" {
		t.Fatalf("first read: %+v, %v", got, err)
	}
	if _, err := m.Update(ctx, tok, sess.Version, SessionData{Role: "owner", Name: "Ann"}); err != nil {
		t.Fatal(err)
	}
	if sess, err = m.Validate(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if got, err := d.get(sess); err != nil || got.Role != "owner" {
		t.Errorf("after Update: %+v, %v; want the new role", got, err)
	}
	for i := range 2 * dataMemoMax {
		d.get(&session.Session{ID: fmt.Sprint(i)})
	}
	if n := len(d.m); n > dataMemoMax {
		t.Errorf("the memo holds %d entries, want at most %d", n, dataMemoMax)
	}
}
