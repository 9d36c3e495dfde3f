// Package loadtest drives the built `karat serve` binary over loopback with
// many virtual users, on a real redis-server it starts, and checks what the
// load must not break. The package has no code of its own: see its tests.
//
// TestLoad (about 30 s, run by .ci/run in a step of its own, without -race:
// under -race it skips, saying so, unless KARAT_LOAD=1) starts karat with the demo data and
// rate-limit windows of 30 days (so that quotas refill by less than one unit
// during a default run and every count is exact), trusts 127.0.0.1 as a proxy, and
// gives each virtual user an address of its own in X-Forwarded-For. Each
// user fails 7 logins (exactly five 401s, then 429s), signs in twice (two
// devices), then until its API quota is used up or the time is over: lists
// its devices, reads KPIs and a customer, creates invoices (exactly 10 per
// demo user across all virtual users, then 429), and every 20 rounds signs
// in a third device and revokes it from the first (the revoked token is
// refused at once). Every response must carry the API policy's count, one
// less than the previous, down to 0, then 429 with Retry-After. Afterwards
// every session not revoked must be valid (0 lost), every revoked one
// refused (0 resurrected), and revoke-others must end exactly the other
// sessions of each user. No response may be 5xx, and the server's RSS may
// not grow past max(4×, +256 MiB) of its value at start.
//
// The long run, on demand:
//
//	KARAT_LOAD_DURATION=10m KARAT_LOAD_VUS=200 KARAT_LOAD_API_LIMIT=100000 \
//	  go test -run TestLoad -v -timeout 30m ./internal/loadtest
//
// KARAT_LOAD_DRIVER=goredis runs karat on the go-redis driver instead of
// rueidis. The figures (requests/s, p50/p99, statuses, RSS) are logged as
// "figure:" lines and copied into RELIABILITY.md.
package loadtest
