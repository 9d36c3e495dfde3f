// Command bench puts karat side by side with the libraries it replaces, in
// one process, against one Redis, and prints ratios measured in the same
// run (absolute timings drift on shared machines; ratios do not).
//
//	cd bench && go run .                         # full run (about 15 minutes)
//	go run . --quick                             # smoke run, as .ci/run does
//	go run . --redis redis://127.0.0.1:6380/0    # your own server
//	go run . --json > run.json                   # for machines
//	go run . --plot ratios.svg                   # bar chart of the ratios
//	go run . --only 'ratelimit|memlimit'         # some groups or scenarios
//
// It is a separate module (its go.mod replaces github.com/karat-go/karat
// with ../), so that the peers never enter the library's go.mod.
//
// # What it does
//
// Without --redis it starts its own redis-server (persistence off) on a
// free loopback port in 20000–55535 and stops it at the end; with --redis
// every key goes under a random prefix ("karat-bench-…") and is deleted
// afterwards, and nothing is flushed.
//
// A group is one job (validate a session, read a cache hit, load a cache
// miss, decide a rate limit, decide it for a client far over its limit,
// decide it in memory). Each scenario of a group — karat, a peer, or a raw
// client floor — is set up once: its keys are written through the
// library's own API and read once (warm-up), so connections, scripts and
// client-side caches start as in a steady state. Then, for every round,
// for 1 and 64 goroutines, for every keyspace (a hot key; a key drawn at
// random from 100,000; for misses a key never used), every scenario runs
// for --duration, in an order rotated by the round, so no scenario always
// runs first or last (one garbage collection per round, none per run).
// ops/s is the median over rounds; p50 and p99 come
// from a log-linear histogram of every operation (3% resolution);
// allocs/op is runtime.MemStats.Mallocs over the run divided by the
// operations (the clients' background goroutines included, the runner's
// loop allocating nothing). "× best peer" divides by the fastest peer
// without errors in the same group and case, "× floor" by the fastest raw
// client floor.
//
// Beside speed it measures correctness (1,024 concurrent decisions from 4
// processes of this binary against one key limited to 100: admitted,
// denied, errors), Redis memory (used_memory delta per session and per
// cache entry over 100,000 written through each library), the memory
// driver's Go heap per key, and the RSS that 1,000,000 keys add to a fresh
// process for each in-memory limiter.
//
// The command exits non-zero when a scenario cannot be set up, a karat
// scenario returns errors, or karat's limiter admits other than exactly the
// limit: that is what --quick in CI checks. It asserts nothing about speed.
//
// # Choices where the issue was silent
//
//   - Every library uses its defaults, except redigo's pool (MaxIdle 64:
//     its default keeps no idle connection and would dial per request) and
//     go-redis/cache's local TinyLFU, sized to hold every key (the most
//     favourable setting for it; its entries live a minute and are not
//     invalidated by other processes' writes).
//   - A session validation is what each library's middleware does per
//     request: scs Load + GetString; gorilla/sessions store.Get on a fresh
//     *http.Request carrying the cookie; karat Manager.Validate.
//   - A cache value is a ~200-byte product record, decoded into a struct by
//     every library (karat and eko's marshaler with their codecs,
//     go-redis/cache with msgpack); the raw floors return bytes undecoded.
//   - karat's sessions record activity at most once an hour (TouchInterval
//     1 h; the default is 1 minute): scs and gorilla/sessions keep no idle
//     time, and with the default each of 100,000 rarely seen sessions would
//     pay a script call on nearly every validation.
//   - karat's sessions and cache entries are written through a second store
//     (as another process would), because a store reads its own recent
//     writes from the server for MaxStale.
//   - The rate-limit speed scenarios use a limit that is never reached
//     (2^30 per hour); the hammering variant pre-exhausts a limit of 10 per
//     hour on the hot key, so every decision is a denial. A karat decision
//     taken by a fail mode (Degraded) counts as an error.
//   - The floor of a Redis rate limit is rueidis running an INCR+PEXPIRE
//     script (EVALSHA); of a cache hit, rueidis DoCache with a 1-minute TTL
//     and go-redis GET; of a miss, GET then SET.
//   - Correctness uses a limit of 100 per hour, with a burst of 100 for the
//     GCRA peers, so that exactly 100 must pass.
package main
