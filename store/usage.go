package store

import "context"

// CapUsage names the UsageReporter capability, as conformance harnesses
// declare it.
const CapUsage = "usage"

// UsageReporter is the optional capability of telling how much the store
// holds, as an operator's dashboard shows it ("12 keys, 1.18M memory").
type UsageReporter interface {
	// Usage returns the number of keys and the memory the store reports:
	// for Redis, DBSIZE of the database and INFO's used_memory of the
	// server, summed over every master of a cluster (the whole database,
	// not only karat's keys); for the memory driver, its own accounting.
	// Bytes is 0 when the server does not report its memory (miniredis).
	Usage(ctx context.Context) (Usage, error)
}

// Usage is what a UsageReporter reports.
type Usage struct {
	Keys  int64 // keys in the database
	Bytes int64 // memory in use, in bytes; 0 when unknown
}
