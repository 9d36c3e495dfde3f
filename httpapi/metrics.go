package httpapi

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds karat's Prometheus metrics, registered on a registry of its
// own (so two servers in one process, as in tests, never collide):
//
//	karat_http_requests_total{route,method,code}
//	karat_http_requests_in_flight
//	karat_http_request_duration_seconds{route,method}   histogram
//	karat_cache_requests_total{cache,result}             result: hit, miss, fallback, error
//	karat_ratelimit_decisions_total{policy,decision}     decision: allowed, denied, error
//	karat_sessions_live                                  live sessions (read at scrape time)
//	karat_store_errors_total                             requests that met an unreachable store
//	karat_store_up                                       1 when the last ping answered
//	karat_store_ping_seconds                             latency of the last successful ping
//
// plus the Go runtime and process collectors.
type Metrics struct {
	reg         *prometheus.Registry
	requests    *prometheus.CounterVec
	inFlight    prometheus.Gauge
	durations   *prometheus.HistogramVec
	cache       *prometheus.CounterVec
	decisions   *prometheus.CounterVec
	storeErrors prometheus.Counter
	storeUp     prometheus.Gauge
	ping        prometheus.Gauge
}

// NewMetrics creates the metrics on a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "karat_http_requests_total", Help: "HTTP requests by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "karat_http_requests_in_flight", Help: "HTTP requests being served.",
		}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "karat_http_request_duration_seconds", Help: "HTTP request latency by route template and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "karat_cache_requests_total", Help: "Cache lookups by cache and result (hit, miss, fallback: loaded around a failing store, error).",
		}, []string{"cache", "result"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "karat_ratelimit_decisions_total", Help: "Rate-limit decisions by policy and decision (allowed, denied, error).",
		}, []string{"policy", "decision"}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "karat_store_errors_total", Help: "Requests that failed because the store was unreachable or too slow.",
		}),
		storeUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "karat_store_up", Help: "1 when the store answered its last ping, else 0.",
		}),
		ping: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "karat_store_ping_seconds", Help: "Latency of the store's last successful ping.",
		}),
	}
	m.reg.MustRegister(m.requests, m.inFlight, m.durations, m.cache, m.decisions, m.storeErrors, m.storeUp, m.ping,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry the metrics live on, to add your own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// LiveSessions registers a gauge karat_sessions_live that calls f at scrape
// time. Call it once.
func (m *Metrics) LiveSessions(f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "karat_sessions_live", Help: "Live sessions, as the session layer counts them.",
	}, f))
}

func (m *Metrics) observeRequest(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, itoa(status)).Inc()
	m.durations.WithLabelValues(route, method).Observe(d.Seconds())
}

// CacheResult counts one cache lookup; nil-safe.
func (m *Metrics) CacheResult(cache, result string) {
	if m != nil {
		m.cache.WithLabelValues(cache, result).Inc()
	}
}

// Decision counts one rate-limit decision; nil-safe.
func (m *Metrics) Decision(policy, decision string) {
	if m != nil {
		m.decisions.WithLabelValues(policy, decision).Inc()
	}
}

func (m *Metrics) storePing(up bool, d time.Duration) {
	if m == nil {
		return
	}
	if up {
		m.storeUp.Set(1)
		m.ping.Set(d.Seconds())
		return
	}
	m.storeUp.Set(0)
}
