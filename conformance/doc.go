// Package conformance proves that a store driver keeps the store contract:
// the same cases, run on every driver, must pass on every driver. It is
// exported so that a third party can run it against their own driver, or
// against their own Redis through one of karat's drivers.
//
// A driver's test calls RunStore with a HarnessMaker. The suite makes a new
// Harness for each case, so state never leaks between cases; a harness over a
// shared server keeps cases apart by key prefix instead, and the suite deletes
// every key it wrote. It never flushes anything.
//
// What a harness can do beyond making stores is declared by the optional
// interfaces it implements (Clock, Staller, Partitioner, ClientOwner, Capper). A case that
// needs one the harness lacks is skipped, and the skip says which. Which store
// capabilities the harness expects (Harness.Capabilities) is checked both
// ways: a capability the store has but the harness did not declare fails the
// suite as much as a missing one, so a wrapper that hides a capability is
// caught.
//
// A harness that declares a capability its store does not offer fails the
// cases of that capability with a message naming it; the suite never panics
// on it and goes on with the next case.
//
// CheckScript runs a script's Lua body on the harness's store and its Go body
// on a reference memory store, on the same inputs, and compares results and
// resulting state, error path included. Every layer's scripts go through it.
// Its choices, each one closing a way a wrong pair could pass:
//
//   - State is every key whose name begins with the case's "{prefix}" (found
//     with the Scanner on both sides), not only the declared keys, so an
//     undeclared write in the hash tag fails and is deleted afterwards.
//   - When the harness's store is the memory driver, the Lua body runs on an
//     in-process miniredis (gopher-lua) with the clock set like the
//     reference's, so plain go test compares the two bodies without Redis.
//   - On a Clock (or miniredis), TTLs must agree to the millisecond; on a
//     real server, whose clock moves, a server TTL may be shorter than the
//     reference's by at most the time the case has taken (measured around
//     setup, call and snapshots) plus 1ms, and never longer than it by more
//     than 1ms of rounding.
//
// The test helpers (CheckScript, RunWorkers) take a *testing.T; CheckScript's
// work is done by an unexported function over a small interface, so the
// package's own tests prove that it fails on each kind of wrong pair.
//
// Against a store of your own, without writing Go:
//
//	KARAT_STORE_URL=redis://127.0.0.1:6380/0 go test ./conformance/ -run External -v
//
// runs the store suite under a random key prefix and deletes what it wrote.
package conformance
