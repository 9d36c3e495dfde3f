// Package redisdrv holds what karat's two Redis drivers (goredisstore and
// rueidisstore) share: the mapping of Redis error replies and transport
// failures to store error classes, and the small Lua scripts that make a Store
// method exact where no single Redis command is.
package redisdrv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/karat-go/karat/store"
)

// ReplyError maps a Redis error reply (the text after '-') to a store error
// class joined with cause. fromScript says the reply answered EVAL/EVALSHA:
// a reply that is no known class is then a *store.ScriptError raised by the
// script body (redis.error_reply) and carries the message as Redis sent it.
//
// msg may come wrapped by miniredis (see ScriptReplyMessage); ReplyError
// unwraps it.
func ReplyError(msg string, cause error, fromScript bool) error {
	msg = ScriptReplyMessage(msg)
	code, _, _ := strings.Cut(msg, " ")
	switch {
	case code == "WRONGTYPE":
		return fmt.Errorf("%w: %w", store.ErrWrongType, cause)
	case strings.Contains(msg, "not an integer or out of range"),
		strings.Contains(msg, "increment or decrement would overflow"):
		return fmt.Errorf("%w: %w", store.ErrNotInteger, cause)
	case code == "OOM":
		return fmt.Errorf("%w: %w", store.ErrFull, cause)
	case code == "CROSSSLOT":
		return fmt.Errorf("%w: %w", store.ErrCrossSlot, cause)
	case IsConfigReply(msg):
		return fmt.Errorf("%w: %w", store.ErrConfig, cause)
	case code == "LOADING", code == "CLUSTERDOWN", code == "TRYAGAIN", code == "MASTERDOWN",
		code == "READONLY", code == "BUSY", code == "NOREPLICAS", code == "MOVED", code == "ASK":
		return fmt.Errorf("%w: %w", store.ErrUnavailable, cause)
	case fromScript:
		return errors.Join(&store.ScriptError{Message: msg}, cause)
	}
	return cause
}

// IsConfigReply reports whether the error reply msg refuses the client's
// configuration (store.ErrConfig): authentication, permissions, database
// index. Redis sends these while a connection is set up (AUTH, HELLO,
// SELECT) and, for NOPERM, on a command.
func IsConfigReply(msg string) bool {
	code, _, _ := strings.Cut(msg, " ")
	switch code {
	case "WRONGPASS", "NOAUTH", "NOPERM":
		return true
	}
	return strings.Contains(msg, "DB index is out of range") ||
		strings.Contains(msg, "invalid DB index") ||
		strings.Contains(msg, "called without any password configured") ||
		strings.Contains(msg, "Client sent AUTH, but no password is set")
}

// IsConfigTransport reports whether a transport failure says the client is
// configured wrongly rather than the server being away: a TLS certificate
// that does not verify, or a server that does not speak TLS answering a TLS
// client.
func IsConfigTransport(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &record) || errors.As(err, &unknown) ||
		errors.As(err, &hostname) || errors.As(err, &invalid)
}

// TransportError maps a failure that is not a Redis reply (dial, read,
// write, timeout) to ErrUnavailable joined with the cause (ErrConfig when
// IsConfigTransport says so); when ctx is done
// its error is joined too, so errors.Is(err, context.DeadlineExceeded) and
// errors.Is(err, context.Canceled) hold. A cancellation by the caller is
// reported as the context error only, not as ErrUnavailable.
func TransportError(ctx context.Context, cause error) error {
	if IsConfigTransport(cause) {
		return fmt.Errorf("%w: %w", store.ErrConfig, cause)
	}
	cerr := ctx.Err()
	if d, ok := ctx.Deadline(); cerr == nil && ok && !time.Now().Before(d) {
		// The deadline has passed but the context's timer has not fired
		// yet: a client that set the connection's deadline from the
		// context (go-redis) can see "i/o timeout" first on a loaded
		// machine. It is the caller's deadline all the same.
		cerr = context.DeadlineExceeded
	}
	if cerr != nil {
		if errors.Is(cerr, context.Canceled) {
			return fmt.Errorf("%w: %w", cerr, cause)
		}
		if errors.Is(cause, cerr) {
			return fmt.Errorf("%w: %w", store.ErrUnavailable, cause)
		}
		return fmt.Errorf("%w: %w: %w", store.ErrUnavailable, cerr, cause)
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, cause)
}

// IncrByLua is IncrBy as one atomic step: the TTL (ARGV[2], milliseconds, 0
// for none) is applied only when the key did not exist before the increment.
var IncrByLua = `local existed = redis.call('EXISTS', KEYS[1])
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 and tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v`

// PersistLua is Expire(key, 0): remove the TTL and report whether the key
// exists (PERSIST alone answers 0 both for a missing key and for a key
// without TTL).
var PersistLua = `if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('PERSIST', KEYS[1])
return 1`

// ToValue converts a reply decoded into Go values (int64, string, []byte,
// nil, bool, []any) to a store.Value, following Redis's Lua-to-RESP
// conversion (true is 1, false is nil).
func ToValue(r any) (store.Value, error) {
	switch x := r.(type) {
	case nil:
		return store.NilValue(), nil
	case int64:
		return store.IntValue(x), nil
	case string:
		return store.StringValue(x), nil
	case []byte:
		return store.BytesValue(x), nil
	case bool:
		return store.BoolValue(x), nil
	case []any:
		out := make([]store.Value, len(x))
		for i, e := range x {
			v, err := ToValue(e)
			if err != nil {
				return store.Value{}, err
			}
			out[i] = v
		}
		return store.ArrayValue(out...), nil
	}
	return store.Value{}, fmt.Errorf("karat: script reply of unsupported type %T", r)
}

// FromPTTL turns a PTTL reply into TTL's answer: -2 (missing) is
// ErrNotFound, -1 (no expiry) is 0, 0 (under a millisecond left) is 1ms,
// since the key still has a TTL, and more than store.MaxTTL (a TTL set by
// another client) is MaxTTL, which a Duration holds.
func FromPTTL(ms int64) (time.Duration, error) {
	switch {
	case ms == -2:
		return 0, store.ErrNotFound
	case ms == -1:
		return 0, nil
	case ms == 0:
		return time.Millisecond, nil
	case ms > int64(store.MaxTTL/time.Millisecond):
		return store.MaxTTL, nil
	}
	return time.Duration(ms) * time.Millisecond, nil
}
