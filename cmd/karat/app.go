package main

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/karat-go/karat/httpapi"
	"github.com/karat-go/karat/store"
)

// app is the server's handler and the pieces serve must run and stop.
type app struct {
	handler http.Handler
	health  *httpapi.Health
}

func newApp(ctx context.Context, cfg *serveConfig, s store.Store, log *slog.Logger) (*app, error) {
	metrics := httpapi.NewMetrics()
	health := httpapi.NewHealth(s, &httpapi.HealthOptions{Logger: log, Metrics: metrics})
	r := mux.NewRouter()
	r.Use(httpapi.TagRoute)
	r.HandleFunc("/healthz", httpapi.Healthz).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/readyz", health.Readyz).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/metrics", metrics.Handler()).Methods(http.MethodGet)
	return &app{handler: httpapi.Observe(log, metrics)(r), health: health}, nil
}
