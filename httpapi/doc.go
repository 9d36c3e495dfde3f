// Package httpapi is karat on HTTP: gorilla/mux middleware and handlers for
// the jeweller platform's API, over karat's session, cache and rate-limit
// layers. It is what `karat serve` runs, and how an application embeds
// karat: every piece is a func(http.Handler) http.Handler or a handler that
// mounts on any *mux.Router or Subrouter().
//
// Start with New and Mount:
//
//	s, _ := drivers.Open(ctx, "memory://")
//	users, _ := demo.NewUsers(password, 0)
//	api, _ := httpapi.New(s, users, demo.NewCatalogue(nil), &httpapi.Options{
//		SessionSecrets: [][]byte{secret}, Metrics: metrics, Health: health,
//	})
//	r := mux.NewRouter()
//	api.Mount(r)
//	http.ListenAndServe(addr, httpapi.Observe(logger, metrics)(r))
//
// The pieces, each usable alone:
//
//   - Observe: one structured log line per request (log/slog) and the HTTP
//     metrics. It logs method, route template, path without the query,
//     status, size, duration, peer, user id and the error met; never a
//     header, a cookie, a token, a body or a password.
//   - Metrics: Prometheus metrics on a registry of their own (see the type).
//   - Health: pings the store in the background, logs its loss and its
//     recovery with the outage's duration, and serves /readyz (200 with the
//     ping latency, 503 within a second while the store does not answer).
//     Healthz answers 200 while the process runs.
//   - WriteProblem: RFC 9457 problem+json, the body of every error.
//   - API.Authenticate: the session from the karat_session cookie or an
//     Authorization: Bearer token; 401 without one.
//   - API.RateLimitAPI: the API policy per client IP on every /v1 request,
//     and the RateLimit-Policy / RateLimit fields (draft-ietf-httpapi-
//     ratelimit-headers) of every policy decided during the request on every
//     /v1 response; 429 with Retry-After.
//
// # Choices where the issue was silent
//
//   - Login counts failures only, exactly, under any concurrency: each
//     attempt reserves one unit of the login policy (per client IP + email)
//     before the password is checked, so at most Limit checks run per window,
//     and a successful login gives the quota back by resetting that IP +
//     email's count (ratelimit has no public refund; the user has just proved
//     the email is theirs). 40 concurrent wrong passwords: five 401s, then
//     429s. The login policy fails closed: a store that does not answer is
//     503, never a login.
//   - The API policy (per client IP) is decided before authentication, so
//     that unauthenticated floods are limited too; a route's own policy
//     (invoices, uploads: per user) is decided after it, separately: a
//     request the route policy denies still counts against the API policy.
//   - The client IP is the TCP peer unless the peer is in
//     Options.TrustedProxies; only then are Forwarded / X-Forwarded-For read
//     (ratelimit.ClientIP). Partition keys in the headers are hashes.
//   - Cache-Status (RFC 9211) is "karat; hit" when the value came from the
//     cache (a remembered "not found" included, and a value another request's
//     load brought in) and "karat; fwd=miss; stored" when this request ran
//     the load.
//   - The tenant caches (KPIs, customers, products, invoices) and the gold
//     price fall back to the data source when the store fails or does not
//     answer within the caches' budget (cache.Policy.FallbackToLoader): the
//     route answers 200 from a load that is not stored, with Cache-Status
//     "karat; fwd=miss; detail=store-unavailable" (metric result
//     "fallback"), instead of 503. Under saturation a slow store then costs
//     a load, not an error. The route still needs its session validated,
//     so with the whole store away it is 503 all the same.
//   - The tenant in /v1/tenants/{tenant}/... must equal the session's
//     tenant byte for byte, as the router decoded the path; anything else is
//     403 (another shop, a case or encoding variant, a nonexistent shop: no
//     enumeration). Handlers then key data and cache by the session's
//     tenant, never the path's.
//   - Creating an invoice deletes the shop's cached KPI entry (not the whole
//     tenant's cache); if the store fails then, the invoice stands (201) and
//     a Warning header says the KPIs were not invalidated.
//   - Another user's session id, and a malformed one, on DELETE
//     /v1/sessions/{id} are 404. Logging in while sending a session of the
//     same user rotates it (same id, new token); a session of another user is
//     ended and a new one created.
//   - Password reset needs an email (400 without), always answers 202, and
//     sends nothing: the demo has no mail.
//   - JSON bodies are capped at 64 KiB and must be application/json (415
//     otherwise); uploads at Options.MaxUploadBytes (1 MiB), checked on
//     Content-Length and while reading (413 both ways); the demo keeps no
//     upload, it answers its size and SHA-256.
//   - Every store-facing call of a request is bounded: rate-limit decisions
//     by Options.LimitTimeout (250 ms), session calls by Options.StoreTimeout
//     (500 ms), cache calls by 3/5 of it; the first that fails answers 503,
//     so against a hanging store a request ends within 750 ms.
//   - gorilla/mux answers 404 for a wrong method once a later route takes
//     that method; the /v1 not-found handler asks the router and answers 405
//     with Allow instead.
//   - The session keeps the user's role, email and name (SessionData), so
//     that authorisation needs no directory lookup; never a secret.
package httpapi
