package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/karat-go/karat/httpapi"
	"github.com/karat-go/karat/httpapi/demo"
	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/store"
	"github.com/karat-go/karat/webui"
)

// app is the server's handler and the pieces serve must run and stop.
type app struct {
	handler http.Handler
	health  *httpapi.Health
	api     *httpapi.API
}

// policiesFrom overrides the presets with the policies text names.
func policiesFrom(text string) (httpapi.Policies, error) {
	var p httpapi.Policies
	if strings.TrimSpace(text) == "" {
		return p, nil
	}
	m, err := ratelimit.ParsePolicies(text)
	if err != nil {
		return p, err
	}
	for name, pol := range m {
		switch name {
		case ratelimit.API.Name:
			p.API = pol
		case ratelimit.Login.Name:
			p.Login = pol
		case ratelimit.PasswordReset.Name:
			p.PasswordReset = pol
		case ratelimit.InvoiceCreation.Name:
			p.Invoice = pol
		case ratelimit.Upload.Name:
			p.Upload = pol
		default:
			return p, fmt.Errorf("unknown policy %q (want api, login, password-reset, invoice-create or upload)", name)
		}
	}
	return p, nil
}

// emptyDirectory is the directory without --demo: nobody can log in.
type emptyDirectory struct{}

func (emptyDirectory) Authenticate(context.Context, string, string, string) (demo.User, error) {
	return demo.User{}, demo.ErrBadCredentials
}

func newApp(ctx context.Context, cfg *serveConfig, s store.Store, log *slog.Logger) (*app, error) {
	metrics := httpapi.NewMetrics()
	health := httpapi.NewHealth(s, &httpapi.HealthOptions{Logger: log, Metrics: metrics})
	ns, err := store.NewNamespace(strings.Split(cfg.namespace, ":")...)
	if err != nil {
		return nil, fmt.Errorf("--namespace %q: %w", cfg.namespace, err)
	}
	pols, err := policiesFrom(cfg.rateLimits)
	if err != nil {
		return nil, err
	}
	var secrets [][]byte
	for _, sec := range strings.Split(cfg.sessionSecret, ",") {
		secrets = append(secrets, []byte(sec))
	}
	var users httpapi.Directory = emptyDirectory{}
	if cfg.demo {
		start := time.Now()
		u, err := demo.NewUsers(cfg.demoPassword, cfg.bcryptCost)
		if err != nil {
			return nil, err
		}
		users = u
		log.Info("demo users ready", "tenants", strings.Join(demo.Tenants, ","), "hashing_ms", time.Since(start).Milliseconds())
	}
	cat := demo.NewCatalogue(&demo.CatalogueOptions{Delay: cfg.dataDelay})
	ips := make([]string, len(cfg.trustedProxies))
	for i, p := range cfg.trustedProxies {
		ips[i] = p.String()
	}
	api, err := httpapi.New(s, users, cat, &httpapi.Options{
		Namespace:      ns,
		SessionSecrets: secrets,
		TrustedProxies: ips,
		SecureCookies:  cfg.secureCookies,
		Policies:       pols,
		MaxUploadBytes: cfg.uploadMax,
		Logger:         log,
		Metrics:        metrics,
		Health:         health,
	})
	if err != nil {
		return nil, err
	}
	r := mux.NewRouter()
	api.Mount(r)
	// The web pages at / (sign in, your devices, shop, dashboard) over the
	// same API.
	ui, err := webui.New(api, &webui.Options{Metrics: metrics, Health: health, SecureCookies: cfg.secureCookies, Logger: log})
	if err != nil {
		return nil, err
	}
	ui.Mount(r)
	return &app{handler: httpapi.Observe(log, metrics)(r), health: health, api: api}, nil
}
