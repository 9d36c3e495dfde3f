package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/karat-go/karat/store"
)

// HealthOptions configure a Health monitor. The zero value is valid.
type HealthOptions struct {
	// Interval between background pings. Default 500ms.
	Interval time.Duration
	// Timeout of one ping, in the background and on /readyz. Default 400ms,
	// so /readyz answers well within a second even when the store hangs.
	Timeout time.Duration
	// Logger gets a line when the store stops answering and one when it
	// answers again, with how long it was down. Default slog.Default().
	Logger *slog.Logger
	// Metrics, if set, get karat_store_up and karat_store_ping_seconds.
	Metrics *Metrics
	// Now is the clock used to time pings and outages. Default time.Now.
	Now func() time.Time
}

// Health watches a store: it pings it in the background and reports the
// result on /readyz and in metrics. It relies on the driver to reconnect
// (both Redis drivers do) and only observes: it logs the loss of the store
// and its recovery, with the time the outage lasted.
type Health struct {
	s    store.Store
	opts HealthOptions

	mu        sync.Mutex
	up        bool
	latency   time.Duration
	lastErr   error
	downSince time.Time
	checked   time.Time
}

// HealthState is a snapshot of what Health last saw.
type HealthState struct {
	Up        bool          `json:"up"`
	Latency   time.Duration `json:"-"`
	LatencyMS float64       `json:"ping_ms"`
	DownSince time.Time     `json:"down_since,omitzero"`
	Error     string        `json:"error,omitempty"`
	Checked   time.Time     `json:"checked"`
}

// NewHealth returns a monitor of s; call Run to start pinging. It assumes the
// store is up until a ping says otherwise (the server opens it with a ping).
func NewHealth(s store.Store, opts *HealthOptions) *Health {
	h := &Health{s: s, up: true}
	if opts != nil {
		h.opts = *opts
	}
	if h.opts.Interval <= 0 {
		h.opts.Interval = 500 * time.Millisecond
	}
	if h.opts.Timeout <= 0 {
		h.opts.Timeout = 400 * time.Millisecond
	}
	if h.opts.Logger == nil {
		h.opts.Logger = slog.Default()
	}
	if h.opts.Now == nil {
		h.opts.Now = time.Now
	}
	return h
}

// Run pings the store every Interval until ctx is done.
func (h *Health) Run(ctx context.Context) {
	t := time.NewTicker(h.opts.Interval)
	defer t.Stop()
	for {
		h.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check pings the store once (bounded by Timeout), records and returns the
// result, and logs a change of state.
func (h *Health) Check(ctx context.Context) HealthState {
	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	start := h.opts.Now()
	err := h.s.Ping(ctx)
	now := h.opts.Now()
	d := now.Sub(start)
	if err != nil && ctx.Err() != nil && context.Cause(ctx) == context.Canceled {
		// Our caller gave up (shutdown, a client that went away): that says
		// nothing about the store.
		return h.State()
	}
	h.mu.Lock()
	wasUp := h.up
	h.checked = now
	if err == nil {
		h.up, h.latency, h.lastErr = true, d, nil
		if !wasUp {
			h.opts.Logger.Info("store reachable again", "down_for", now.Sub(h.downSince).Round(time.Millisecond).String(), "ping_ms", ms(d))
		}
	} else {
		h.up, h.lastErr = false, err
		if wasUp {
			h.downSince = start
			h.opts.Logger.Error("store unreachable; the driver keeps reconnecting", "err", err.Error())
		}
	}
	st := h.stateLocked()
	h.mu.Unlock()
	h.opts.Metrics.storePing(st.Up, d)
	return st
}

// State returns what the last ping saw.
func (h *Health) State() HealthState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stateLocked()
}

func (h *Health) stateLocked() HealthState {
	st := HealthState{Up: h.up, Latency: h.latency, LatencyMS: ms(h.latency), Checked: h.checked}
	if !h.up {
		st.DownSince = h.downSince
		if h.lastErr != nil {
			st.Error = h.lastErr.Error()
		}
	}
	return st
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Healthz answers 200 while the process runs: it checks nothing else.
func Healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Readyz pings the store now (within Timeout) and answers 200 with the ping
// latency, or 503 problem+json while the store does not answer.
func (h *Health) Readyz(w http.ResponseWriter, r *http.Request) {
	st := h.Check(r.Context())
	if !st.Up {
		w.Header().Set("Retry-After", "1")
		WriteProblem(w, r, http.StatusServiceUnavailable, "the store does not answer")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "store": st})
}
