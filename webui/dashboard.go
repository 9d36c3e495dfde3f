package webui

import (
	"net/http"
	"sort"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/karat-go/karat/httpapi"
	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/session"
)

// cacheRow is one cache's lookups as the metrics count them.
type cacheRow struct {
	Name               string
	Hits, Misses, Errs int64
	HitRate            float64
	HasLookups         bool
}

// policyRow is one rate-limit policy's decisions.
type policyRow struct {
	Name                              string
	Allowed, Denied, Degraded, Errors int64
}

type dashboardContent struct {
	Updated      time.Time
	Refresh      int
	Store        *httpapi.HealthState
	Sessions     *session.Stats
	SessionsErr  string
	Caches       []cacheRow
	Policies     []policyRow
	Limiter      ratelimit.Stats
	Requests     int64
	ServerErrors int64
	StoreErrors  int64
	NoMetrics    bool
}

func (u *UI) dashboard(w http.ResponseWriter, r *http.Request) {
	c := httpapi.CallerOf(r)
	d := pageData{Title: "Dashboard", Nav: "dashboard"}
	u.withCaller(&d, c)
	if !d.Owner {
		u.renderError(w, r, http.StatusForbidden, "Owners only",
			"The dashboard is for the shop's owner. Your account is a "+c.Data.Role+" account.")
		return
	}
	dc := dashboardContent{Updated: u.opts.Now(), Refresh: int(u.opts.Refresh.Round(time.Second) / time.Second)}
	dc.Refresh = max(dc.Refresh, 1)
	if u.opts.Health != nil {
		st := u.opts.Health.State()
		dc.Store = &st
	}
	ctx, cancel := u.storeCtx(r.Context())
	ss, err := u.api.Sessions().Stats(ctx)
	cancel()
	if err != nil {
		dc.SessionsErr = "the store did not answer"
	} else {
		dc.Sessions = &ss
	}
	dc.Limiter = u.api.Limiter().Stats()
	if u.opts.Metrics == nil {
		dc.NoMetrics = true
	} else if fams, err := u.opts.Metrics.Registry().Gather(); err != nil {
		dc.NoMetrics = true
	} else {
		dc.fromMetrics(fams)
	}
	d.Refresh = dc.Refresh
	d.Content = dc
	u.render(w, http.StatusOK, "dashboard", d)
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func (dc *dashboardContent) fromMetrics(fams []*dto.MetricFamily) {
	caches := map[string]*cacheRow{}
	policies := map[string]*policyRow{}
	for _, f := range fams {
		switch f.GetName() {
		case "karat_cache_requests_total":
			for _, m := range f.GetMetric() {
				name := label(m, "cache")
				row := caches[name]
				if row == nil {
					row = &cacheRow{Name: name}
					caches[name] = row
				}
				n := int64(m.GetCounter().GetValue())
				switch label(m, "result") {
				case "hit":
					row.Hits += n
				case "miss":
					row.Misses += n
				default:
					row.Errs += n
				}
			}
		case "karat_ratelimit_decisions_total":
			for _, m := range f.GetMetric() {
				name := label(m, "policy")
				row := policies[name]
				if row == nil {
					row = &policyRow{Name: name}
					policies[name] = row
				}
				n := int64(m.GetCounter().GetValue())
				switch label(m, "decision") {
				case "allowed":
					row.Allowed += n
				case "denied":
					row.Denied += n
				case "degraded":
					row.Degraded += n
				default:
					row.Errors += n
				}
			}
		case "karat_http_requests_total":
			for _, m := range f.GetMetric() {
				n := int64(m.GetCounter().GetValue())
				dc.Requests += n
				if code, _ := strconv.Atoi(label(m, "code")); code >= 500 {
					dc.ServerErrors += n
				}
			}
		case "karat_store_errors_total":
			for _, m := range f.GetMetric() {
				dc.StoreErrors += int64(m.GetCounter().GetValue())
			}
		}
	}
	for _, row := range caches {
		if looked := row.Hits + row.Misses; looked > 0 {
			row.HasLookups = true
			row.HitRate = float64(row.Hits) / float64(looked)
		}
		dc.Caches = append(dc.Caches, *row)
	}
	sort.Slice(dc.Caches, func(i, j int) bool { return dc.Caches[i].Name < dc.Caches[j].Name })
	for _, row := range policies {
		dc.Policies = append(dc.Policies, *row)
	}
	sort.Slice(dc.Policies, func(i, j int) bool { return dc.Policies[i].Name < dc.Policies[j].Name })
}
