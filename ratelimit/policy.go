package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Errors of the package. Store errors pass through wrapped, so errors.Is with
// the store's classes (store.ErrInvalidKey, ...) works too.
var (
	// ErrInvalidPolicy: a policy that cannot be enforced (no name, a limit
	// below 1, a window out of range, numbers too large to stay exact).
	ErrInvalidPolicy = errors.New("karat/ratelimit: invalid policy")
	// ErrInvalidCost: a cost below 1.
	ErrInvalidCost = errors.New("karat/ratelimit: invalid cost")
	// ErrInvalidKey: an empty subject key.
	ErrInvalidKey = errors.New("karat/ratelimit: invalid key")
)

// Algorithm is how a policy counts.
type Algorithm uint8

const (
	// GCRA is the generic cell rate algorithm (a token bucket kept as one
	// timestamp): Limit per Window, refilled continuously, up to Burst at
	// once. The default.
	GCRA Algorithm = iota
	// SlidingWindow weighs the previous fixed window's count by how much of
	// it still overlaps the sliding window, plus the current window's count.
	SlidingWindow
)

// String returns "gcra" or "sliding".
func (a Algorithm) String() string {
	switch a {
	case GCRA:
		return "gcra"
	case SlidingWindow:
		return "sliding"
	}
	return "algorithm(" + strconv.Itoa(int(a)) + ")"
}

// FailMode is what a policy decides when the store errors or does not
// answer within the deadline.
type FailMode uint8

const (
	// FailClosed denies, with Retry-After set to Options.FailRetryAfter.
	FailClosed FailMode = iota
	// FailOpen allows, and counts it in Stats.FailedOpen.
	FailOpen
	// FailLocal decides with an in-process limiter of this Limiter at
	// Policy.LocalShare of the limit.
	FailLocal
)

// String returns "closed", "open" or "local".
func (f FailMode) String() string {
	switch f {
	case FailClosed:
		return "closed"
	case FailOpen:
		return "open"
	case FailLocal:
		return "local"
	}
	return "failmode(" + strconv.Itoa(int(f)) + ")"
}

// Policy is a named limit. The zero values of the optional fields are
// sensible: Burst 0 means Limit, Algorithm GCRA, FailMode FailClosed,
// LocalShare 0 means DefaultLocalShare.
//
// The Name is part of the store key: two policies with one name on one
// subject share their count. That is what tiers want (a shop whose plan goes
// from "free" to "pro" keeps what it used), and what two unrelated policies
// must avoid.
type Policy struct {
	// Name identifies the policy in keys and headers: letters, digits and
	// "-._~" only (it is sent as a structured-field string).
	Name string
	// Limit is how many cost units the policy admits per Window.
	Limit int64
	// Window is the period Limit refers to: 1 ms up to 366 days.
	Window time.Duration
	// Burst (GCRA only) is how many units may be taken at once from a full
	// bucket; 0 means Limit.
	Burst int64
	// Algorithm is GCRA (default) or SlidingWindow.
	Algorithm Algorithm
	// FailMode is what to decide when the store fails.
	FailMode FailMode
	// LocalShare (FailLocal only) is the share of Limit and Burst the
	// in-process limiter admits, in (0, 1]; 0 means DefaultLocalShare. Set it
	// to about 1/instances.
	LocalShare float64
	// ChargeFailuresOnly marks a policy that counts failures (failed logins):
	// the middleware peeks before the handler and charges only when the
	// response is a failure. Callers of Allow do it by hand: Peek, then Allow
	// on failure.
	ChargeFailuresOnly bool
}

// DefaultLocalShare is the share of the limit a FailLocal policy admits in
// process when LocalShare is 0.
const DefaultLocalShare = 0.5

// maxExact bounds the numbers the script computes with: Lua numbers are
// doubles, exact up to 2^53. Times are microseconds since 1970 (about 2^51
// until 2100), so the bucket's span must stay well below that.
const maxExact = 1 << 50

// The window range. Below a millisecond, Redis TTLs cannot follow.
const (
	MinWindow = time.Millisecond
	MaxWindow = 366 * 24 * time.Hour
)

// Validate reports whether p can be enforced exactly, with ErrInvalidPolicy.
func (p Policy) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrInvalidPolicy, p.Name, fmt.Sprintf(format, args...))
	}
	if p.Name == "" {
		return bad("no name")
	}
	if len(p.Name) > 64 {
		return bad("name longer than 64 bytes")
	}
	for i := 0; i < len(p.Name); i++ {
		c := p.Name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return bad("name may hold only letters, digits and -._~")
		}
	}
	if p.Limit < 1 {
		return bad("limit %d below 1", p.Limit)
	}
	if p.Window < MinWindow || p.Window > MaxWindow {
		return bad("window %v outside [%v, %v]", p.Window, MinWindow, MaxWindow)
	}
	if p.Burst < 0 {
		return bad("negative burst")
	}
	switch p.Algorithm {
	case GCRA:
		t := p.interval()
		if t < 1 {
			return bad("limit %d per %v is more than one per microsecond", p.Limit, p.Window)
		}
		if b := p.burst(); b > maxExact/t {
			return bad("burst %d times interval %dµs is too large to stay exact", b, t)
		}
	case SlidingWindow:
		if p.Burst != 0 && p.Burst != p.Limit {
			return bad("burst applies to GCRA only")
		}
		if p.Window%time.Millisecond != 0 {
			return bad("sliding window %v is not a whole number of milliseconds", p.Window)
		}
		if p.Limit > maxExact/p.Window.Milliseconds() {
			return bad("limit %d times window %v in ms is too large to stay exact", p.Limit, p.Window)
		}
	default:
		return bad("unknown algorithm %d", p.Algorithm)
	}
	switch p.FailMode {
	case FailClosed, FailOpen, FailLocal:
	default:
		return bad("unknown fail mode %d", p.FailMode)
	}
	if p.LocalShare < 0 || p.LocalShare > 1 || math.IsNaN(p.LocalShare) {
		return bad("local share %v outside (0, 1]", p.LocalShare)
	}
	return nil
}

// interval is the GCRA emission interval in microseconds, rounded up so the
// policy never admits more than Limit per Window.
func (p Policy) interval() int64 {
	w := p.Window.Microseconds()
	return (w + p.Limit - 1) / p.Limit
}

func (p Policy) burst() int64 {
	if p.Burst == 0 || p.Algorithm == SlidingWindow {
		return p.Limit
	}
	return p.Burst
}

func (p Policy) share() float64 {
	if p.LocalShare == 0 {
		return DefaultLocalShare
	}
	return p.LocalShare
}

// WithLimit returns p with another limit (and burst scaled alike when it was
// set): the way to build a tier of a policy.
func (p Policy) WithLimit(limit int64) Policy {
	if p.Burst != 0 && p.Limit > 0 {
		p.Burst = max(1, p.Burst*limit/p.Limit)
	}
	p.Limit = limit
	return p
}

// The presets of the jeweller platform. Their fail modes are choices: the
// API stays up when Redis is down (open), logins and password resets do not
// (closed: a brute force must not get through an outage), invoice creation
// and uploads fall back to a local limiter at half the limit.
var (
	// API: 100 requests per 15 minutes.
	API = Policy{Name: "api", Limit: 100, Window: 15 * time.Minute, FailMode: FailOpen}
	// Login: 5 failed logins per 15 minutes; successful logins are free.
	Login = Policy{Name: "login", Limit: 5, Window: 15 * time.Minute, FailMode: FailClosed, ChargeFailuresOnly: true}
	// PasswordReset: 3 per hour.
	PasswordReset = Policy{Name: "password-reset", Limit: 3, Window: time.Hour, FailMode: FailClosed}
	// InvoiceCreation: 10 per minute.
	InvoiceCreation = Policy{Name: "invoice-create", Limit: 10, Window: time.Minute, FailMode: FailLocal}
	// Upload: 20 per minute.
	Upload = Policy{Name: "upload", Limit: 20, Window: time.Minute, FailMode: FailLocal}
)

// Presets returns the presets by name.
func Presets() map[string]Policy {
	return map[string]Policy{API.Name: API, Login.Name: Login, PasswordReset.Name: PasswordReset,
		InvoiceCreation.Name: InvoiceCreation, Upload.Name: Upload}
}

// Tiers chooses a policy per request from a plan name (a shop's
// subscription, say). Every tier should keep the Default's Name, so that a
// plan change keeps the subject's count.
type Tiers struct {
	Default Policy
	Plans   map[string]Policy
}

// For returns the plan's policy, or the Default.
func (t Tiers) For(plan string) Policy {
	if p, ok := t.Plans[plan]; ok {
		return p
	}
	return t.Default
}

// ParsePolicy reads a policy from configuration text:
//
//	NAME LIMIT/WINDOW [burst=N] [algo=gcra|sliding] [fail=closed|open|local] [share=F] [failures-only]
//
// for example "api 100/15m fail=open" or "login 5/15m failures-only". WINDOW
// is a Go duration ("15m", "1h", "100ms"); a bare unit ("m", "h") means one.
// The result is validated.
func ParsePolicy(spec string) (Policy, error) {
	f := strings.Fields(spec)
	if len(f) < 2 {
		return Policy{}, fmt.Errorf("%w: %q: want NAME LIMIT/WINDOW [options]", ErrInvalidPolicy, spec)
	}
	p := Policy{Name: f[0]}
	lim, win, ok := strings.Cut(f[1], "/")
	if !ok {
		return Policy{}, fmt.Errorf("%w: %q: want LIMIT/WINDOW, got %q", ErrInvalidPolicy, spec, f[1])
	}
	var err error
	if p.Limit, err = strconv.ParseInt(lim, 10, 64); err != nil {
		return Policy{}, fmt.Errorf("%w: %q: limit: %w", ErrInvalidPolicy, spec, err)
	}
	if win != "" && (win[0] < '0' || win[0] > '9') {
		win = "1" + win
	}
	if p.Window, err = time.ParseDuration(win); err != nil {
		return Policy{}, fmt.Errorf("%w: %q: window: %w", ErrInvalidPolicy, spec, err)
	}
	for _, opt := range f[2:] {
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "burst":
			if p.Burst, err = strconv.ParseInt(v, 10, 64); err != nil {
				return Policy{}, fmt.Errorf("%w: %q: burst: %w", ErrInvalidPolicy, spec, err)
			}
		case "algo":
			switch v {
			case "gcra":
				p.Algorithm = GCRA
			case "sliding":
				p.Algorithm = SlidingWindow
			default:
				return Policy{}, fmt.Errorf("%w: %q: unknown algo %q", ErrInvalidPolicy, spec, v)
			}
		case "fail":
			switch v {
			case "closed":
				p.FailMode = FailClosed
			case "open":
				p.FailMode = FailOpen
			case "local":
				p.FailMode = FailLocal
			default:
				return Policy{}, fmt.Errorf("%w: %q: unknown fail mode %q", ErrInvalidPolicy, spec, v)
			}
		case "share":
			if p.LocalShare, err = strconv.ParseFloat(v, 64); err != nil {
				return Policy{}, fmt.Errorf("%w: %q: share: %w", ErrInvalidPolicy, spec, err)
			}
		case "failures-only":
			p.ChargeFailuresOnly = true
		default:
			return Policy{}, fmt.Errorf("%w: %q: unknown option %q", ErrInvalidPolicy, spec, opt)
		}
	}
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	return p, nil
}

// ParsePolicies reads one policy per non-empty line (or per ';'), as
// ParsePolicy; lines starting with '#' are comments. Names must be unique.
func ParsePolicies(text string) (map[string]Policy, error) {
	out := map[string]Policy{}
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ';' }) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		p, err := ParsePolicy(line)
		if err != nil {
			return nil, err
		}
		if _, dup := out[p.Name]; dup {
			return nil, fmt.Errorf("%w: policy %q defined twice", ErrInvalidPolicy, p.Name)
		}
		out[p.Name] = p
	}
	return out, nil
}
