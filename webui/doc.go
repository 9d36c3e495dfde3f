// Package webui is karat serve's web pages: sign in, "Your devices" (every
// live session of the signed-in user, with sign-out per device and of all
// others), Shop (the API's cached records with their Cache-Status and
// timing, and an invoice button that invalidates the KPIs) and an owners'
// Dashboard (live session, cache, rate-limit and store statistics). They
// are server-rendered with html/template; the templates and the one
// stylesheet are embedded, so the pages work with no network, and there is
// no JavaScript at all.
//
// Start with New and Mount, on the router the API is mounted on:
//
//	api, _ := httpapi.New(s, users, data, &httpapi.Options{..., Metrics: m, Health: h})
//	r := mux.NewRouter()
//	api.Mount(r)
//	ui, _ := webui.New(api, &webui.Options{Metrics: m, Health: h})
//	ui.Mount(r)
//	http.ListenAndServe(addr, httpapi.Observe(logger, m)(r))
//
// # How the pages use the API
//
// The pages are a client of the JSON API, in process: each page calls the
// API's own routes (POST /v1/auth/login, GET /v1/sessions, GET
// /v1/tenants/{tenant}/kpis, ...) through the router, with the browser's
// cookie, user agent and address, and renders the answer. So the pages
// have exactly the API's behaviour: the login policy and its lockout, the
// session rotation, the cookie's attributes (set by the API), tenant
// checks, Cache-Status, invoice limits. Authentication is the API's
// Authenticate middleware; its 401 becomes a redirect to sign-in.
//
// # Choices where the issue was silent
//
//   - Cross-site request protection is net/http.CrossOriginProtection
//     (Sec-Fetch-Site, then Origin against Host) on every route, with a 403
//     page of its own. It refuses same-site cross-origin posts too (another
//     port of the same host), which SameSite=Lax alone would let through.
//     No CSRF token is needed, so none is in any form or URL.
//   - Content-Security-Policy: default-src 'none'; style-src 'self';
//     img-src 'self'; form-action 'self'; frame-ancestors 'none';
//     base-uri 'none'. No script, no inline style. The dashboard refreshes
//     with <meta http-equiv="refresh"> (Options.Refresh, 5 s).
//   - Every page but the dashboard is one unit of the API policy
//     (RateLimitAPI wraps the page, and the page's in-process calls carry
//     its context, so they are not charged again): the shop page is one
//     request, not five. The dashboard is not charged: an owner watching it
//     reloads it 180 times in 15 minutes, more than the API policy's 100;
//     it reads the metrics (Options.Metrics), the health monitor
//     (Options.Health) and the session layer's Stats directly.
//   - When the API policy denies a page, or the store is down, the page
//     says so in words with the time to wait (from Retry-After), never a
//     raw 429 or 503 body. The login lockout is shown on the sign-in form,
//     with the time left from the login policy's Retry-After.
//   - A session that ended (signed out, revoked from another device,
//     expired) sends the browser to /signin?ended=1, which says so, and the
//     dead cookie is cleared. Flash messages travel as fixed query flags
//     (?revoked=2, ?created=INV-2024-002), never as free text, never a token.
//   - "Device" is the kind of device read from the User-Agent at sign-in
//     (iPhone, Windows, Android phone, ...; sent to the API as the session's
//     device label), "browser" is read from the stored User-Agent
//     (ParseUserAgent, best effort, never used for security). Names (users,
//     devices, customers, products) are shown with dir="auto" or <bdi>, so
//     Persian text displays right to left inside the English page.
//   - Times are relative ("3 min ago", "in 29 min") on Options.Now, with the
//     UTC time in the title and a <time datetime> element.
//   - The shop page shows the demo catalogue's first customer, product and
//     invoice (1, 1, INV-2024-001); the dashboard's cache hit rates and
//     decisions per policy come from the Prometheus counters the API keeps.
//   - Forms are capped at 16 KiB; every field has a label; the pages work
//     with the keyboard alone (the tests sign in with Tab and Enter) and at
//     375 px wide (cards, not wide tables).
package webui
