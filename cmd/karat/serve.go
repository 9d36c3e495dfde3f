package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/karat-go/karat/drivers"
	"github.com/karat-go/karat/store"
)

// serveConfig is what `karat serve` was told.
type serveConfig struct {
	addr           string
	storeURL       string
	trustedProxies []netip.Prefix
	sessionSecret  string
	secureCookies  bool
	demo           bool
	demoPassword   string
	logFormat      string
	dataDelay      time.Duration
	uploadMax      int64
	shutdownWait   time.Duration
	bcryptCost     int
	namespace      string
	rateLimits     string
}

func parseServe(args []string, stdout io.Writer) (*serveConfig, error) {
	c := &serveConfig{}
	f := newEnvFlags("serve")
	fs := f.fs
	var proxies string
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	f.twin("addr", "KARAT_ADDR")
	fs.StringVar(&c.storeURL, "store", "memory://", "store URL: memory://, redis://host:port, redis+cluster://..., see README")
	f.twin("store", "KARAT_STORE_URL")
	fs.StringVar(&proxies, "trusted-proxies", "", "comma-separated CIDRs of proxies whose X-Forwarded-For/Forwarded headers are believed")
	f.twin("trusted-proxies", "KARAT_TRUSTED_PROXIES")
	fs.StringVar(&c.sessionSecret, "session-secret", "", "secret keying session token hashes (at least 32 bytes); several, comma-separated, newest first, rotate it; generated with a warning when absent")
	f.twin("session-secret", "KARAT_SESSION_SECRET")
	fs.BoolVar(&c.secureCookies, "secure-cookies", false, "mark the session cookie Secure (serve behind HTTPS)")
	f.twin("secure-cookies", "KARAT_SECURE_COOKIES")
	fs.BoolVar(&c.demo, "demo", false, "seed the demo shops, users and catalogue (default on with memory://)")
	f.twin("demo", "KARAT_DEMO")
	fs.StringVar(&c.demoPassword, "demo-password", "", "the demo users' password; generated and printed once when absent")
	f.twin("demo-password", "KARAT_DEMO_PASSWORD")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	f.twin("log-format", "KARAT_LOG_FORMAT")
	fs.DurationVar(&c.dataDelay, "data-delay", 20*time.Millisecond, "time the demo data source takes per load")
	f.twin("data-delay", "KARAT_DATA_DELAY")
	fs.Int64Var(&c.uploadMax, "upload-max-bytes", 1<<20, "largest upload body accepted (413 beyond)")
	f.twin("upload-max-bytes", "KARAT_UPLOAD_MAX_BYTES")
	fs.DurationVar(&c.shutdownWait, "shutdown-timeout", 10*time.Second, "how long shutdown waits for in-flight requests")
	f.twin("shutdown-timeout", "KARAT_SHUTDOWN_TIMEOUT")
	fs.IntVar(&c.bcryptCost, "bcrypt-cost", 10, "bcrypt cost of the demo users' password hashes (4-31)")
	f.twin("bcrypt-cost", "KARAT_BCRYPT_COST")
	fs.StringVar(&c.namespace, "namespace", "karat", "key prefix of everything the server writes to the store")
	f.twin("namespace", "KARAT_NAMESPACE")
	fs.StringVar(&c.rateLimits, "rate-limits", "", `override rate-limit policies, ';'-separated: "api 100/15m fail=open; login 5/15m failures-only" (names: api, login, password-reset, invoice-create, upload)`)
	f.twin("rate-limits", "KARAT_RATE_LIMITS")
	if err := f.parse(args, stdout); err != nil {
		return nil, err
	}
	if _, err := policiesFrom(c.rateLimits); err != nil {
		return nil, fmt.Errorf("--rate-limits: %v", err)
	}
	if c.namespace == "" {
		return nil, errors.New("--namespace must not be empty")
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return nil, fmt.Errorf("--log-format %q: want text or json", c.logFormat)
	}
	if _, _, err := net.SplitHostPort(c.addr); err != nil {
		return nil, fmt.Errorf("--addr %q: %v", c.addr, err)
	}
	for _, p := range strings.Split(proxies, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return nil, fmt.Errorf("--trusted-proxies: %q is not a CIDR", p)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		c.trustedProxies = append(c.trustedProxies, pfx.Masked())
	}
	if c.sessionSecret != "" {
		for _, s := range strings.Split(c.sessionSecret, ",") {
			if len(s) < 32 {
				return nil, errors.New("--session-secret: each secret must be at least 32 bytes")
			}
		}
	}
	if c.dataDelay < 0 || c.uploadMax <= 0 || c.shutdownWait <= 0 {
		return nil, errors.New("--data-delay must be >= 0, --upload-max-bytes and --shutdown-timeout > 0")
	}
	if c.bcryptCost < 4 || c.bcryptCost > 31 {
		return nil, fmt.Errorf("--bcrypt-cost %d: want 4 to 31", c.bcryptCost)
	}
	u, err := url.Parse(c.storeURL)
	if err != nil {
		return nil, fmt.Errorf("--store: %w", drivers.ErrBadURL)
	}
	if !f.set("demo") {
		c.demo = u.Scheme == "memory"
	}
	return c, nil
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// randomSecret returns n random bytes as URL-safe base64.
func randomSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseServe(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "karat serve: %s (karat serve -h lists the flags)\n", oneLine(err))
		return 2
	}
	log := newLogger(cfg.logFormat, stderr)
	quietGoRedis(log)

	openCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	s, err := drivers.Open(openCtx, cfg.storeURL)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "karat serve: cannot open the store: %s\n", oneLine(err))
		if errors.Is(err, drivers.ErrBadURL) {
			return 2
		}
		return 1
	}
	log.Info("store open", "store", redactURL(cfg.storeURL), "capabilities", strings.Join(store.Capabilities(s), ","))

	if cfg.sessionSecret == "" {
		cfg.sessionSecret = randomSecret(32)
		log.Warn("no --session-secret given: using a random one, so sessions end when the process does (set KARAT_SESSION_SECRET in production)")
	}
	if cfg.demo && cfg.demoPassword == "" {
		cfg.demoPassword = randomSecret(12)
		// Printed once, to the terminal, never through the logger.
		fmt.Fprintf(stderr, "karat: demo users' password (generated, shown once): %s\n", cfg.demoPassword)
	}

	app, err := newApp(ctx, cfg, s, log)
	if err != nil {
		s.Close()
		fmt.Fprintf(stderr, "karat serve: %s\n", oneLine(err))
		return 1
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		s.Close()
		fmt.Fprintf(stderr, "karat serve: cannot listen: %s\n", oneLine(err))
		return 1
	}
	srv := &http.Server{
		Handler:           app.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	healthCtx, stopHealth := context.WithCancel(context.Background())
	healthDone := make(chan struct{})
	go func() { defer close(healthDone); app.health.Run(healthCtx) }()
	maintDone := make(chan struct{})
	go func() { defer close(maintDone); app.api.Maintain(healthCtx, time.Minute) }()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "demo", cfg.demo, "url", "http://"+ln.Addr().String())

	select {
	case err := <-served:
		log.Error("server stopped", "err", err.Error())
		stopHealth()
		<-healthDone
		<-maintDone
		s.Close()
		return 1
	case <-ctx.Done():
	}
	log.Info("shutdown: signal received; no longer accepting connections, waiting for in-flight requests", "timeout", cfg.shutdownWait.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownWait)
	defer cancel()
	code := 0
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("shutdown: in-flight requests did not finish in time; closing their connections", "err", err.Error())
		srv.Close()
		code = 1
	} else {
		log.Info("shutdown: in-flight requests finished")
	}
	stopHealth()
	<-healthDone
	<-maintDone
	log.Info("shutdown: health monitor and session cleanup stopped")
	if err := s.Close(); err != nil {
		log.Error("shutdown: closing the store", "err", err.Error())
		code = 1
	} else {
		log.Info("shutdown: store closed")
	}
	log.Info("shutdown: complete", "exit", code)
	return code
}

// redactURL hides the password of a store URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	return u.Redacted()
}
