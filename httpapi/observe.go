package httpapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/mux"
)

// reqInfo is what handlers inside a request tell the outer Observe
// middleware: the route template, the error met, the user. It travels in the
// request context as a pointer, so that handlers deep in the chain can fill
// it in and Observe reads it after they return.
type reqInfo struct {
	mu     sync.Mutex
	route  string
	err    error
	user   string // the user's id, never a token or an email
	tenant string
}

type reqInfoKey struct{}

func infoOf(r *http.Request) *reqInfo {
	if r == nil {
		return nil
	}
	i, _ := r.Context().Value(reqInfoKey{}).(*reqInfo)
	return i
}

func setLogError(r *http.Request, err error) {
	if i := infoOf(r); i != nil && err != nil {
		i.mu.Lock()
		i.err = err
		i.mu.Unlock()
	}
}

func setLogUser(r *http.Request, user, tenant string) {
	if i := infoOf(r); i != nil {
		i.mu.Lock()
		i.user, i.tenant = user, tenant
		i.mu.Unlock()
	}
}

// TagRoute is gorilla/mux middleware (add it with Router.Use) that records
// the matched route's path template for Observe's logs and metrics. Mount
// adds it to the routes it registers; without it requests are labelled
// "unmatched".
func TagRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if i := infoOf(r); i != nil {
			if cr := mux.CurrentRoute(r); cr != nil {
				if tpl, err := cr.GetPathTemplate(); err == nil {
					i.mu.Lock()
					i.route = tpl
					i.mu.Unlock()
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// statusRecorder remembers the status and size of a response.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Observe is middleware that logs every request with logger (one line at
// Info, or Warn for 5xx) and records it in m (which may be nil). It wraps the
// whole router so that unmatched requests are seen too. What a line holds:
// method, route template, path (never the query string), status, bytes,
// duration, the peer's address, the user's id and the error met. It never
// logs a header, a cookie, a token, a body or a password.
func Observe(logger *slog.Logger, m *Metrics) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			info := &reqInfo{}
			r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info))
			rec := &statusRecorder{ResponseWriter: w}
			if m != nil {
				m.inFlight.Inc()
				defer m.inFlight.Dec()
			}
			next.ServeHTTP(rec, r)
			d := time.Since(start)
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			info.mu.Lock()
			route, err, user, tenant := info.route, info.err, info.user, info.tenant
			info.mu.Unlock()
			if route == "" {
				route = "unmatched"
			}
			if m != nil {
				m.observeRequest(route, methodLabel(r.Method), status, d)
				if err != nil && StoreDown(err) {
					m.storeErrors.Inc()
				}
			}
			if logger == nil {
				return
			}
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelWarn
			}
			attrs := []slog.Attr{
				slog.String("method", truncate(r.Method, 16)),
				slog.String("route", route),
				slog.String("path", truncate(r.URL.EscapedPath(), 512)),
				slog.Int("status", status),
				slog.Int64("bytes", rec.bytes),
				slog.Float64("ms", float64(d.Microseconds())/1000),
				slog.String("peer", peerIP(r)),
			}
			if user != "" {
				attrs = append(attrs, slog.String("user", user), slog.String("tenant", tenant))
			}
			if err != nil {
				attrs = append(attrs, slog.String("err", err.Error()))
			}
			logger.LogAttrs(r.Context(), level, "request", attrs...)
		})
	}
}

// methodLabel keeps the metrics' method label bounded: a client can send
// any method name, and each would otherwise be a new time series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// truncate cuts s to at most n bytes for a log line, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// peerIP is the address of the TCP peer, without the port.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func itoa(n int) string { return strconv.Itoa(n) }
