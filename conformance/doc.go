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
// CheckScript runs a script's Lua body on the harness's store and its Go body
// on a reference memory store, on the same inputs, and compares results and
// resulting state, error path included. Every layer's scripts go through it.
//
// Against a store of your own, without writing Go:
//
//	KARAT_STORE_URL=redis://127.0.0.1:6380/0 go test ./conformance/ -run External -v
//
// runs the store suite under a random key prefix and deletes what it wrote.
package conformance
