package store

import "errors"

// Error classes. Drivers return one of these joined with the underlying cause
// (fmt.Errorf("%w: %w", store.ErrUnavailable, cause)), so callers test the class
// with errors.Is and can still reach the client library's own error with
// errors.As. context.Canceled and context.DeadlineExceeded from the caller's
// context are passed through as well; a deadline that passes while a call is in
// flight is reported as ErrUnavailable joined with context.DeadlineExceeded.
var (
	// ErrNotFound: the key (or hash field) does not exist.
	ErrNotFound = errors.New("karat/store: not found")
	// ErrInvalidKey: the key is empty, longer than MaxKeyLen, or a key part
	// given to Key is longer than MaxPartLen; or a script touched a key it did
	// not declare.
	ErrInvalidKey = errors.New("karat/store: invalid key")
	// ErrInvalidTTL: a negative TTL.
	ErrInvalidTTL = errors.New("karat/store: invalid ttl")
	// ErrCrossSlot: a multi-key operation or a script whose keys do not all hash
	// to one Redis Cluster slot. Refused by every driver, on a single node too.
	ErrCrossSlot = errors.New("karat/store: keys span more than one cluster slot")
	// ErrWrongType: the key holds another kind of value (a hash where a string
	// is expected, or the reverse).
	ErrWrongType = errors.New("karat/store: wrong type")
	// ErrNotInteger: IncrBy on a value that is not a base-10 int64, or an
	// increment that would overflow int64.
	ErrNotInteger = errors.New("karat/store: value is not an integer or would overflow")
	// ErrFull: the memory driver is at its cap and has no key with a TTL left to
	// evict (Redis's OOM error maps here too).
	ErrFull = errors.New("karat/store: store is full")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("karat/store: store is closed")
	// ErrUnavailable: the server could not be reached or did not answer in
	// time: connection refused or reset, a stalled server past the deadline,
	// a cluster without a reachable master for the slot, LOADING, and the like.
	ErrUnavailable = errors.New("karat/store: store unavailable")
	// ErrConfig: the server refused the client's configuration, and retrying
	// will not help until the configuration changes: a wrong user or password
	// (WRONGPASS), a password missing (NOAUTH) or given to a server without
	// one, a user without the permission for a command (NOPERM), a database
	// index the server does not have, a TLS certificate that does not verify.
	// It is never ErrUnavailable: a caller whose fail mode is "open" should
	// not treat a misconfigured deployment as a passing outage.
	ErrConfig = errors.New("karat/store: configuration refused by the server")
)

// ScriptError is an error that a script body raised on purpose: in Lua with
// return redis.error_reply("CODE detail"), in Go by returning a *ScriptError.
// Drivers turn a Lua error reply into a *ScriptError carrying the same message,
// so both bodies of a script fail the same way. By convention the first word
// is an upper-case code that callers may switch on.
type ScriptError struct {
	Message string
}

// Error returns the message as the script raised it.
func (e *ScriptError) Error() string { return e.Message }
