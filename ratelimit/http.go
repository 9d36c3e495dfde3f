package ratelimit

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// KeyFunc extracts a subject key from a request. An empty key with a nil
// error means the rule does not apply to this request (no user logged in,
// say); an error answers 400 Bad Request.
type KeyFunc func(r *http.Request) (string, error)

// Prefixed returns a KeyFunc giving prefix + fn(r), or "" (the rule does not
// apply) when fn returns "". Use it for users, tenants, API keys:
// Prefixed("user:", func(r) string { return userID(r.Context()) }).
func Prefixed(prefix string, fn func(r *http.Request) string) KeyFunc {
	return func(r *http.Request) (string, error) {
		v := fn(r)
		if v == "" {
			return "", nil
		}
		return prefix + v, nil
	}
}

// Route returns a KeyFunc for the route: the net/http pattern that matched
// (Request.Pattern), or the method and path when there is none. For
// gorilla/mux, pass Prefixed("route:", ...) with the route's template.
func Route() KeyFunc {
	return func(r *http.Request) (string, error) {
		if r.Pattern != "" {
			return "route:" + r.Pattern, nil
		}
		return "route:" + r.Method + " " + r.URL.Path, nil
	}
}

// Join returns a KeyFunc that joins the keys of fns with "|" (say client IP
// and route), or "" when any of them is "".
func Join(fns ...KeyFunc) KeyFunc {
	return func(r *http.Request) (string, error) {
		var sb strings.Builder
		for i, fn := range fns {
			k, err := fn(r)
			if err != nil || k == "" {
				return "", err
			}
			if i > 0 {
				sb.WriteByte('|')
			}
			sb.WriteString(k)
		}
		return sb.String(), nil
	}
}

// Rule is one policy the middleware applies.
type Rule struct {
	// Policy is used unless Tier gives one.
	Policy Policy
	// Tier, if set, chooses the policy per request (from the tenant's plan,
	// say); ok false falls back to Policy.
	Tier func(r *http.Request) (p Policy, ok bool)
	// Key extracts the subject. Required.
	Key KeyFunc
	// Cost, if set, gives the request's cost; otherwise 1.
	Cost func(r *http.Request) int64
}

// MiddlewareOptions configure Middleware. The zero value (or nil) is valid.
type MiddlewareOptions struct {
	// LegacyHeaders adds X-RateLimit-Limit, X-RateLimit-Remaining and
	// X-RateLimit-Reset (seconds) for the most constrained policy.
	LegacyHeaders bool
	// Denied writes the 429 response after the headers are set; nil writes
	// a plain-text "rate limit exceeded".
	Denied http.Handler
	// Failed reports whether a response counts as a failure for
	// ChargeFailuresOnly policies; nil means status >= 400.
	Failed func(status int) bool
	// OnError is called with errors from key extraction or bad policies
	// (the request is answered 400 or 500); nil ignores them.
	OnError func(r *http.Request, err error)
}

// Middleware returns a func(http.Handler) http.Handler (a mux.MiddlewareFunc
// too) that decides each request against the rules together (AllowAll: a
// denial charges none), sets the RateLimit-Policy and RateLimit fields
// (draft-ietf-httpapi-ratelimit-headers), and answers 429 with Retry-After
// when denied. ChargeFailuresOnly rules are peeked before the handler and
// charged after it only when the response is a failure.
func (l *Limiter) Middleware(rules []Rule, opts *MiddlewareOptions) func(http.Handler) http.Handler {
	if opts == nil {
		opts = &MiddlewareOptions{}
	}
	failed := opts.Failed
	if failed == nil {
		failed = func(status int) bool { return status >= 400 }
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var charge, onFailure []Request
			for _, rule := range rules {
				p := rule.Policy
				if rule.Tier != nil {
					if tp, ok := rule.Tier(r); ok {
						p = tp
					}
				}
				k, err := rule.Key(r)
				if err != nil {
					if opts.OnError != nil {
						opts.OnError(r, err)
					}
					http.Error(w, "bad request", http.StatusBadRequest)
					return
				}
				if k == "" {
					continue
				}
				cost := int64(1)
				if rule.Cost != nil {
					cost = rule.Cost(r)
				}
				req := Request{Policy: p, Key: k, Cost: cost}
				if p.ChargeFailuresOnly {
					onFailure = append(onFailure, req)
				} else {
					charge = append(charge, req)
				}
			}
			ctx := r.Context()
			var ds []Decision
			if len(onFailure) > 0 {
				_, peeked, err := l.PeekAll(ctx, onFailure)
				if err != nil {
					l.middlewareError(w, r, opts, err)
					return
				}
				ds = append(ds, peeked...)
			}
			if len(charge) > 0 && (len(ds) == 0 || Overall(ds).Allowed) {
				_, taken, err := l.AllowAll(ctx, charge)
				if err != nil {
					l.middlewareError(w, r, opts, err)
					return
				}
				ds = append(ds, taken...)
			}
			if len(ds) == 0 {
				next.ServeHTTP(w, r)
				return
			}
			reqs := append(onFailure, charge...)
			SetHeaders(w.Header(), reqs[:len(ds)], ds, opts.LegacyHeaders)
			if o := Overall(ds); !o.Allowed {
				w.Header().Set("Retry-After", retryAfter(o))
				if opts.Denied != nil {
					opts.Denied.ServeHTTP(w, r)
					return
				}
				http.Error(w, "rate limit exceeded", http.StatusTooManyRequests)
				return
			}
			if len(onFailure) == 0 {
				next.ServeHTTP(w, r)
				return
			}
			sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
			next.ServeHTTP(sw, r)
			if failed(sw.status) {
				// Charged after the fact: the request already ran, so a
				// denial here only means the count is full.
				_, _, _ = l.AllowAll(ctx, onFailure)
			}
		})
	}
}

func (l *Limiter) middlewareError(w http.ResponseWriter, r *http.Request, opts *MiddlewareOptions, err error) {
	if opts.OnError != nil {
		opts.OnError(r, err)
	}
	if isInputError(err) {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	http.Error(w, "internal error", http.StatusInternalServerError)
}

// statusWriter remembers the status the handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// ceilSeconds rounds d up to whole seconds.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

func retryAfter(d Decision) string {
	if d.Never {
		// Retrying cannot help; a day says so without lying about a time.
		return "86400"
	}
	return strconv.FormatInt(max(1, ceilSeconds(d.RetryAfter)), 10)
}

// PartitionKey is what the headers send as a policy's partition key (pk): a
// hash of the subject key, never the key itself (which may hold a client's
// IP address): the first 12 bytes of SHA-256, as a structured-field byte
// sequence.
func PartitionKey(key string) string {
	var b [partitionKeyLen]byte
	return string(appendPartitionKey(b[:0], key))
}

// partitionKeyLen is the length of a partition key: 12 bytes of SHA-256 in
// base64 (16 characters) between colons.
const partitionKeyLen = 18

// appendPartitionKey appends PartitionKey(key) to dst.
func appendPartitionKey(dst []byte, key string) []byte {
	sum := sha256.Sum256([]byte(key))
	dst = append(dst, ':')
	dst = base64.StdEncoding.AppendEncode(dst, sum[:12])
	return append(dst, ':')
}

// The canonical forms (http.CanonicalHeaderKey) of the fields SetHeaders
// writes: set directly, they are not canonicalised again on every response.
var (
	hdrPolicy = http.CanonicalHeaderKey("RateLimit-Policy")
	hdrLimit  = http.CanonicalHeaderKey("RateLimit")
)

// SetHeaders sets RateLimit-Policy and RateLimit, one item per decision
// (reqs[i] gave ds[i]), as draft-ietf-httpapi-ratelimit-headers has them:
//
//	RateLimit-Policy: "api";q=100;w=900;pk=:...:
//	RateLimit: "api";r=99;t=9;pk=:...:
//
// q is the limit, w the window in seconds (rounded up), r what remains, t
// the seconds until the count is back to zero (rounded up). With legacy set,
// X-RateLimit-Limit, -Remaining and -Reset describe the decision Overall
// picks.
func SetHeaders(h http.Header, reqs []Request, ds []Decision, legacy bool) {
	// Both fields are built by appending into buffers on the stack (a
	// request's few policies fit), each made a string once.
	var pbuf, cbuf [256]byte
	pol, cur := pbuf[:0], cbuf[:0]
	for i, d := range ds {
		if i > 0 {
			pol = append(pol, ", "...)
			cur = append(cur, ", "...)
		}
		var pkb [partitionKeyLen]byte
		pk := appendPartitionKey(pkb[:0], reqs[i].Key)
		pol = append(append(append(pol, '"'), d.Policy...), `";q=`...)
		pol = append(strconv.AppendInt(pol, d.Limit, 10), ";w="...)
		pol = append(append(strconv.AppendInt(pol, ceilSeconds(d.Window), 10), ";pk="...), pk...)
		cur = append(append(append(cur, '"'), d.Policy...), `";r=`...)
		cur = append(strconv.AppendInt(cur, d.Remaining, 10), ";t="...)
		cur = append(append(strconv.AppendInt(cur, ceilSeconds(d.ResetAfter), 10), ";pk="...), pk...)
	}
	h[hdrPolicy] = []string{string(pol)}
	h[hdrLimit] = []string{string(cur)}
	if legacy {
		o := Overall(ds)
		h.Set("X-RateLimit-Limit", strconv.FormatInt(o.Limit, 10))
		h.Set("X-RateLimit-Remaining", strconv.FormatInt(o.Remaining, 10))
		h.Set("X-RateLimit-Reset", strconv.FormatInt(ceilSeconds(o.ResetAfter), 10))
	}
}
