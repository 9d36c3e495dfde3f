package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/karat-go/karat/internal/shardcount"
	"github.com/karat-go/karat/store"
)

// Options configure a Limiter. The zero value (or nil) is valid.
type Options struct {
	// Namespace prefixes every key; zero means karat:ratelimit.
	Namespace store.Namespace
	// Clock is the application's clock; nil means time.Now. Decisions never
	// read it (they run on the store's clock); only the local memories do,
	// and only for durations (how long ago a denial was learned), so a clock
	// that is off by a constant changes nothing.
	Clock func() time.Time
	// Timeout bounds each store call on top of the caller's context
	// (when the caller's context can never end, by a deadline shared with
	// calls that start at about the same time: between 15/16 of Timeout
	// and Timeout after the call starts); 0
	// means DefaultTimeout, a negative value means only the caller's
	// deadline. On a store that decides in process (store.Int64Updater,
	// the memory driver) it bounds how long a decision waits for a key
	// another call holds, the only thing such a store waits for.
	Timeout time.Duration
	// BlockedKeys caps how many "blocked until" entries the limiter
	// remembers; 0 means DefaultBlockedKeys, a negative value turns the
	// memory off.
	BlockedKeys int
	// FailRetryAfter is the Retry-After of a FailClosed denial; 0 means one
	// second.
	FailRetryAfter time.Duration
	// LocalKeys caps the keys of the in-process limiter used by FailLocal; 0
	// means DefaultLocalKeys.
	LocalKeys int
}

// Defaults of Options.
const (
	DefaultTimeout     = 250 * time.Millisecond
	DefaultBlockedKeys = 100_000
	DefaultLocalKeys   = 100_000
)

// DefaultNamespace is where keys go when Options.Namespace is zero.
var DefaultNamespace = store.MustNamespace("karat", "ratelimit")

// Limiter decides requests against policies kept in a store. It is safe for
// concurrent use; make one per process and share it.
type Limiter struct {
	s              store.Store
	ns             store.Namespace
	clock          func() time.Time
	base           time.Time
	timeout        time.Duration
	failRetryAfter time.Duration
	blocked        *blockedMemory
	local          *localLimiter
	upd            store.Int64Updater // the store's in-process read-modify-write (memory driver), or nil
	compiledMu     sync.Mutex         // serialises changes to compiled
	compiled       atomic.Pointer[map[Policy]*compiled]
	lastCompiled   atomic.Pointer[compiled] // the policy compiled last: the one-policy case skips the map
	shared         sharedDeadline

	// Counted on every decision: sharded, so that cores do not fight over
	// one cache line.
	decisions, storeCalls shardcount.Counter
	stats                 struct {
		blockedHits, failedOpen, failedClosed, failedLocal, refunds, refundErrors atomic.Uint64
	}
}

// New returns a Limiter over s.
func New(s store.Store, opts *Options) *Limiter {
	if opts == nil {
		opts = &Options{}
	}
	l := &Limiter{s: s, ns: opts.Namespace, clock: opts.Clock, timeout: opts.Timeout, failRetryAfter: opts.FailRetryAfter}
	if l.ns.IsZero() {
		l.ns = DefaultNamespace
	}
	if l.clock == nil {
		l.clock = time.Now
	}
	l.base = l.clock()
	if l.timeout == 0 {
		l.timeout = DefaultTimeout
	}
	if l.failRetryAfter <= 0 {
		l.failRetryAfter = time.Second
	}
	if opts.BlockedKeys >= 0 {
		n := opts.BlockedKeys
		if n == 0 {
			n = DefaultBlockedKeys
		}
		l.blocked = newBlockedMemory(n)
	}
	lk := opts.LocalKeys
	if lk <= 0 {
		lk = DefaultLocalKeys
	}
	l.local = newLocalLimiter(lk)
	l.upd, _ = store.Capability[store.Int64Updater](s)
	return l
}

// mono is the application clock as a duration since New: only differences
// of it are ever used.
func (l *Limiter) mono() time.Duration { return l.clock().Sub(l.base) }

// Decision is the outcome for one policy, or for a set of them.
type Decision struct {
	// Policy is the name of the policy (for a set: of the one that decided:
	// the first that denied, or the one with the least remaining).
	Policy string
	// Allowed tells whether the request may proceed (and was charged, for
	// Allow).
	Allowed bool
	// Limit is the policy's Limit, for headers.
	Limit int64
	// Window is the policy's Window, for headers.
	Window time.Duration
	// Remaining is how many cost units the policy would admit right now
	// (after this request's charge when it was allowed). Never negative.
	Remaining int64
	// ResetAfter is how long until the subject's count is back to zero if it
	// makes no more requests.
	ResetAfter time.Duration
	// RetryAfter is how long to wait before the same request can be
	// admitted; 0 when allowed. Meaningless when Never is set.
	RetryAfter time.Duration
	// Never is set when the cost exceeds what the policy can ever admit at
	// once (its burst): retrying cannot help.
	Never bool
	// Degraded is the store error when the policy's FailMode decided
	// instead of the store; nil otherwise.
	Degraded error
	// Local is set when the local "blocked until" memory answered without a
	// store round trip.
	Local bool
}

// Stats are a Limiter's counters since New.
type Stats struct {
	Decisions    uint64 // Allow, Peek and AllowAll calls that returned a decision
	StoreCalls   uint64 // scripts run on the store
	BlockedHits  uint64 // denials answered by the "blocked until" memory
	FailedOpen   uint64 // policy decisions made by FailOpen
	FailedClosed uint64 // policy decisions made by FailClosed
	FailedLocal  uint64 // policy decisions made by FailLocal
	Refunds      uint64 // reservations given back (AllowAll across subjects)
	RefundErrors uint64 // refunds that failed: that quota stays used until it refills
}

// Stats returns a snapshot of the counters.
func (l *Limiter) Stats() Stats {
	return Stats{
		Decisions: l.decisions.Load(), StoreCalls: l.storeCalls.Load(),
		BlockedHits: l.stats.blockedHits.Load(), FailedOpen: l.stats.failedOpen.Load(),
		FailedClosed: l.stats.failedClosed.Load(), FailedLocal: l.stats.failedLocal.Load(),
		Refunds: l.stats.refunds.Load(), RefundErrors: l.stats.refundErrors.Load(),
	}
}

// Request is one policy applied to one subject key, with a cost.
type Request struct {
	Policy Policy
	// Key is the subject: "ip:203.0.113.9", "user:42", a tenant id, ...
	// Any bytes up to store.MaxPartLen; it is encoded, and it is the key's
	// hash tag, so that every policy on one subject is decided in one slot.
	Key string
	// Cost is how many units the request takes; 0 means 1.
	Cost int64
}

// maxCompiled bounds the cache of formatted policies.
const maxCompiled = 1024

// compiled is a policy's script arguments, formatted once.
type compiled struct {
	p          Policy
	alg, a, b  string
	burst      int64
	t, tau     int64             // GCRA: the emission interval and the burst tolerance, in µs
	keyer      store.TaggedKeyer // builds the policy's key of a subject
	err        error
	take1      []string // GCRA: the hot-path script's arguments for cost 1; never changed
	msA, msB   string   // GCRA of whole milliseconds: T and tau in ms for gcraTakeMsScript; "" otherwise
	msT, msTau int64    // the same as numbers
}

// compile returns p's compiled form. Decisions read the cache without
// taking a lock or writing a shared word: it is a map replaced whole
// (copied) when a policy is added, and the policy compiled last is checked
// first. Policies are keyed by value, so tiers (one name, several limits)
// do not evict one another. An invalid policy is not kept.
func (l *Limiter) compile(p Policy) *compiled {
	if c := l.lastCompiled.Load(); c != nil && c.p == p {
		return c
	}
	if m := l.compiled.Load(); m != nil {
		if c, ok := (*m)[p]; ok {
			return c
		}
	}
	c := &compiled{p: p, err: p.Validate()}
	if c.err != nil {
		return c
	}
	c.keyer = l.ns.TaggedKeyer(p.Name)
	if p.Algorithm == GCRA {
		t := p.interval()
		c.t, c.tau = t, p.burst()*t
		c.alg, c.a, c.b, c.burst = algGCRA, strconv.FormatInt(t, 10), strconv.FormatInt(c.tau, 10), p.burst()
		c.take1 = []string{c.a, c.b, "1"}
		if t%1000 == 0 {
			c.msT, c.msTau = t/1000, c.tau/1000
			c.msA, c.msB = strconv.FormatInt(c.msT, 10), strconv.FormatInt(c.msTau, 10)
			c.take1 = []string{c.msA, c.msB, "1"}
		}
	} else {
		c.alg, c.a, c.b, c.burst = algSliding, strconv.FormatInt(p.Window.Microseconds(), 10), strconv.FormatInt(p.Limit, 10), p.Limit
	}
	l.compiledMu.Lock()
	defer l.compiledMu.Unlock()
	var m map[Policy]*compiled
	if old := l.compiled.Load(); old != nil && len(*old) < maxCompiled {
		// Policies from configuration are few; the bound only limits abuse.
		m = make(map[Policy]*compiled, len(*old)+1)
		for k, v := range *old {
			m[k] = v
		}
	} else {
		m = map[Policy]*compiled{}
	}
	m[p] = c
	l.compiled.Store(&m)
	l.lastCompiled.Store(c)
	return c
}

// Allow decides one request of cost units (at least 1) on key under p,
// charging it when it is allowed. A denied request charges nothing. An
// error is returned only for bad input (ErrInvalidPolicy, ErrInvalidCost,
// ErrInvalidKey, store.ErrInvalidKey); a store that fails is handled by the
// policy's FailMode and reported in Decision.Degraded.
func (l *Limiter) Allow(ctx context.Context, p Policy, key string, cost int64) (Decision, error) {
	if cost < 1 {
		return Decision{}, fmt.Errorf("%w: %d", ErrInvalidCost, cost)
	}
	if l.upd != nil && p.Algorithm == GCRA {
		return l.decideInProcess(ctx, p, key, cost, true)
	}
	var one [1]Request
	one[0] = Request{Policy: p, Key: key, Cost: cost}
	var out [1]Decision
	ds, err := l.decide(ctx, one[:], modeTake, out[:])
	if err != nil {
		return Decision{}, err
	}
	return ds[0], nil
}

// Peek is Allow without charging: it reports whether the request would be
// allowed now and what remains. Peeks change nothing, however many.
func (l *Limiter) Peek(ctx context.Context, p Policy, key string, cost int64) (Decision, error) {
	if cost < 1 {
		return Decision{}, fmt.Errorf("%w: %d", ErrInvalidCost, cost)
	}
	if l.upd != nil && p.Algorithm == GCRA {
		return l.decideInProcess(ctx, p, key, cost, false)
	}
	var one [1]Request
	one[0] = Request{Policy: p, Key: key, Cost: cost}
	var out [1]Decision
	ds, err := l.decide(ctx, one[:], modePeek, out[:])
	if err != nil {
		return Decision{}, err
	}
	return ds[0], nil
}

// AllowAll decides several requests together: all are charged, or (when any
// one is denied) none is. It returns the overall decision (the first denial,
// or the allowed decision with the least remaining) and one decision per
// request, in order. Requests on one Key are decided by one script in one
// round trip; requests on different keys are reserved one key at a time and
// the reservations are refunded when a later key denies (see the package
// doc for what a crash in between does).
func (l *Limiter) AllowAll(ctx context.Context, reqs []Request) (Decision, []Decision, error) {
	if len(reqs) == 1 && l.upd != nil && reqs[0].Policy.Algorithm == GCRA && reqs[0].Cost >= 0 {
		// One GCRA request (the middleware's usual case) on a store that
		// decides in process: Allow's path, not the script.
		cost := max(reqs[0].Cost, 1)
		d, err := l.decideInProcess(ctx, reqs[0].Policy, reqs[0].Key, cost, true)
		if err != nil {
			return Decision{}, nil, err
		}
		ds := []Decision{d}
		return Overall(ds), ds, nil
	}
	ds, err := l.decide(ctx, reqs, modeTake, nil)
	if err != nil {
		return Decision{}, nil, err
	}
	return Overall(ds), ds, nil
}

// PeekAll is AllowAll without charging.
func (l *Limiter) PeekAll(ctx context.Context, reqs []Request) (Decision, []Decision, error) {
	ds, err := l.decide(ctx, reqs, modePeek, nil)
	if err != nil {
		return Decision{}, nil, err
	}
	return Overall(ds), ds, nil
}

// Overall folds per-policy decisions into one: the first denial (the
// longest RetryAfter among denials, a Never first), or else the allowed
// decision with the least Remaining.
func Overall(ds []Decision) Decision {
	var out Decision
	found := false
	for _, d := range ds {
		if d.Allowed {
			continue
		}
		if !found || d.Never && !out.Never || d.Never == out.Never && d.RetryAfter > out.RetryAfter {
			out, found = d, true
		}
	}
	if found {
		return out
	}
	for i, d := range ds {
		if i == 0 || d.Remaining < out.Remaining {
			out = d
		}
	}
	return out
}

// Reset forgets key's count under p, on the store and in this limiter's
// "blocked until" memory. Other Limiter instances keep answering a denial
// from their own memory until the retry time they were told has passed (at
// most that long), then see the reset.
func (l *Limiter) Reset(ctx context.Context, p Policy, key string) error {
	if err := p.Validate(); err != nil {
		return err
	}
	k, err := l.key(p, key)
	if err != nil {
		return err
	}
	if l.blocked != nil {
		l.blocked.forget(k)
	}
	l.local.forget(k)
	ctx, cancel := l.withTimeout(ctx)
	defer cancel()
	_, err = l.s.Delete(ctx, k)
	return err
}

// key is l.key for a compiled (valid) policy.
func (c *compiled) key(key string) (string, error) {
	if key == "" {
		return "", fmt.Errorf("%w: empty subject", ErrInvalidKey)
	}
	return c.keyer.Key(key)
}

func (l *Limiter) key(p Policy, key string) (string, error) {
	if key == "" {
		return "", fmt.Errorf("%w: empty subject", ErrInvalidKey)
	}
	return l.ns.TaggedKey(key, p.Name)
}

func (l *Limiter) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if l.timeout < 0 {
		return ctx, noCancel
	}
	if ctx.Done() == nil {
		// A context that can never end (Background, TODO, values on them):
		// share one deadline among the calls.
		return l.shared.bound(ctx, l.timeout), noCancel
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= l.timeout {
		return ctx, noCancel // the caller's deadline comes first anyway
	}
	return context.WithTimeout(ctx, l.timeout)
}

// sharedDeadline hands calls whose own context can never end a context
// that ends within Options.Timeout, shared with the other calls that start
// at about the same time, instead of a context.WithTimeout each: that cost
// three allocations and a timer per decision, the largest part of what the
// layer added to a store call. A shared context is used by calls starting
// until its deadline is less than timeout − timeout/sharedSlack away, so each
// call is bounded by between 15/16 of Timeout and Timeout, never more; a
// shared context is never cancelled before its deadline (calls still use
// it), and its timer releases it then.
type sharedDeadline struct {
	cur atomic.Pointer[deadlineCtx]
}

const sharedSlack = 16

type deadlineCtx struct {
	context.Context
	deadline time.Time
	cancel   context.CancelFunc // called by the deadline's timer anyway; kept for vet
}

// bound returns a context that ends within timeout, carrying ctx's values.
func (sd *sharedDeadline) bound(ctx context.Context, timeout time.Duration) context.Context {
	d := sd.current(timeout)
	if ctx == context.Background() {
		return d.Context
	}
	return valuesCtx{Context: d.Context, values: ctx}
}

// current returns the shared context, or a new one when it has less than
// timeout − timeout/sharedSlack left.
func (sd *sharedDeadline) current(timeout time.Duration) *deadlineCtx {
	now := time.Now()
	d := sd.cur.Load()
	if d == nil || d.deadline.Sub(now) < timeout-timeout/sharedSlack {
		deadline := now.Add(timeout)
		c, cancel := context.WithDeadline(context.Background(), deadline)
		n := &deadlineCtx{Context: c, deadline: deadline, cancel: cancel}
		sd.cur.CompareAndSwap(d, n) // a racing call may have made one too: either bounds this call
		d = n
	}
	return d
}

// valuesCtx is a shared deadline context with the values of the caller's.
type valuesCtx struct {
	context.Context
	values context.Context
}

// Value implements context.Context with the caller's values.
func (c valuesCtx) Value(key any) any { return c.values.Value(key) }

func noCancel() {}

// item is one request being decided.
type item struct {
	req Request
	c   *compiled
	key string
}

// decide is the heart: validate, answer from the blocked memory, group by
// subject, run one script per subject, refund on a later denial, and apply
// fail modes to the subjects the store could not decide.
//
// The decisions are written to out when it has room for them (Allow and
// Peek pass a buffer on their stack), else to a new slice.
func (l *Limiter) decide(ctx context.Context, reqs []Request, mode string, out []Decision) ([]Decision, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	var itemsBuf [4]item
	items := itemsBuf[:0]
	for i, r := range reqs {
		if r.Cost == 0 {
			r.Cost = 1
		}
		if r.Cost < 0 {
			return nil, fmt.Errorf("%w: %d", ErrInvalidCost, r.Cost)
		}
		c := l.compile(r.Policy)
		if c.err != nil {
			return nil, c.err
		}
		k, err := c.key(r.Key)
		if err != nil {
			return nil, err
		}
		for _, prev := range items[:i] {
			if prev.key == k {
				return nil, fmt.Errorf("%w: policy %q twice on one subject", ErrInvalidPolicy, r.Policy.Name)
			}
		}
		items = append(items, item{req: r, c: c, key: k})
	}
	var ds []Decision
	if len(out) >= len(items) {
		ds = out[:len(items)]
	} else {
		ds = make([]Decision, len(items))
	}
	for i := range items {
		p := items[i].req.Policy
		ds[i] = Decision{Policy: p.Name, Limit: p.Limit, Window: p.Window}
	}

	// A subject remembered as blocked denies the whole set at once: nothing
	// is charged, nothing is asked.
	if l.blocked != nil && l.blocked.any() {
		now := l.mono()
		for i := range items {
			if retry, reset, ok := l.blocked.check(items[i].key, items[i].req.Cost, now); ok {
				d := &ds[i]
				d.Allowed, d.RetryAfter, d.ResetAfter, d.Local = false, retry, reset, true
				l.stats.blockedHits.Add(1)
				l.decisions.Add(1)
				for j := range ds {
					if j != i {
						ds[j].Allowed = false
					}
				}
				return ds, nil
			}
		}
	}

	// Group by subject (the hash tag), keeping the order of first use.
	var groupsBuf [4][2]int
	var orderBuf [4]int
	var usedBuf, chargedBuf [4]bool
	groups := groupsBuf[:0] // [first, end) into order
	order := orderBuf[:0]
	used := usedBuf[:0]
	for range items {
		used = append(used, false)
	}
	for i := range items {
		if used[i] {
			continue
		}
		first := len(order)
		for j := i; j < len(items); j++ {
			if !used[j] && items[j].req.Key == items[i].req.Key {
				used[j] = true
				order = append(order, j)
			}
		}
		groups = append(groups, [2]int{first, len(order)})
	}

	charged := chargedBuf[:0]
	for range groups {
		charged = append(charged, false)
	}
	allowed := true
	for g, span := range groups {
		idx := order[span[0]:span[1]]
		ok, err := l.runGroup(ctx, items, idx, ds, mode)
		if err != nil {
			if isInputError(err) {
				l.refundGroups(ctx, items, order, groups, charged, ds)
				return nil, err
			}
			ok = l.failGroup(items, idx, ds, err, mode)
		} else if mode == modeTake && ok {
			charged[g] = true
		}
		if !ok {
			allowed = false
			if mode == modeTake {
				// No point asking the other subjects: the set is denied.
				// Their decisions stay "not decided": allowed false.
				break
			}
		}
	}
	if !allowed {
		for i := range ds {
			ds[i].Allowed = false
		}
		if mode == modeTake {
			l.refundGroups(ctx, items, order, groups, charged, ds)
		}
	}
	l.decisions.Add(1)
	return ds, nil
}

func isInputError(err error) bool {
	return errors.Is(err, store.ErrInvalidKey) || errors.Is(err, store.ErrCrossSlot) ||
		errors.Is(err, ErrInvalidPolicy) || errors.Is(err, ErrInvalidCost)
}

// runGroup runs the script for the items of one subject and fills their
// decisions; it reports whether every one was allowed.
func (l *Limiter) runGroup(ctx context.Context, items []item, idx []int, ds []Decision, mode string) (bool, error) {
	// The slices go to the store through an interface, so they live on the
	// heap: each is made at its exact size.
	var keys, args []string
	script := decideScript
	if it := &items[idx[0]]; len(idx) == 1 && mode == modeTake && it.c.alg == algGCRA {
		// The hot path: one GCRA policy, charged.
		script = gcraTakeScript
		a, b := it.c.a, it.c.b
		if it.c.msA != "" {
			script, a, b = gcraTakeMsScript, it.c.msA, it.c.msB
		}
		keys = []string{it.key}
		if it.req.Cost == 1 {
			args = it.c.take1 // shared, read only: no slice to build
		} else {
			args = []string{a, b, strconv.FormatInt(it.req.Cost, 10)}
		}
	} else {
		keys = make([]string, 0, len(idx))
		args = make([]string, 0, 1+argsPerKey*len(idx))
		args = append(args, mode)
		for _, i := range idx {
			it := &items[i]
			keys = append(keys, it.key)
			args = append(args, it.c.alg, it.c.a, it.c.b, strconv.FormatInt(it.req.Cost, 10))
		}
	}
	cctx, cancel := l.withTimeout(ctx)
	v, err := l.s.Eval(cctx, script, keys, args...)
	cancel()
	l.storeCalls.Add(1)
	if err != nil {
		return false, err
	}
	var now time.Duration
	if l.blocked != nil {
		now = l.mono()
	}
	if script == gcraTakeMsScript {
		it, d := &items[idx[0]], &ds[idx[0]]
		if v.Kind != store.KindInt || !msDecision(d, v.Int, it.c.msT, it.c.msTau, it.req.Cost) {
			return false, fmt.Errorf("karat/ratelimit: unexpected script result %s", v)
		}
		if d.RetryAfter > 0 && l.blocked != nil {
			l.blocked.remember(it.key, it.req.Cost, now, now+d.RetryAfter, now+d.ResetAfter)
		}
		return d.Allowed, nil
	}
	if v.Kind != store.KindArray || len(v.Array) != 1+4*len(idx) {
		return false, fmt.Errorf("karat/ratelimit: unexpected script result %s", v)
	}
	all := v.Array[0].Int == 1
	for n, i := range idx {
		r := v.Array[1+4*n : 5+4*n]
		d := &ds[i]
		d.Allowed = r[0].Int == 1
		d.Remaining = max(0, r[1].Int)
		d.ResetAfter = time.Duration(r[2].Int) * time.Microsecond
		switch {
		case r[3].Int < 0:
			d.Never = true
		case r[3].Int > 0:
			d.RetryAfter = time.Duration(r[3].Int) * time.Microsecond
			if l.blocked != nil {
				l.blocked.remember(items[i].key, items[i].req.Cost, now, now+d.RetryAfter, now+d.ResetAfter)
			}
		}
	}
	return all, nil
}

// decideInProcess is Allow (take) and Peek of one GCRA policy on a store
// that runs decisions in process (store.Int64Updater: the memory driver):
// the same decision as the script, by gcraUpdate on the typed TAT under the
// key's lock, with no script, no Value and no allocation beyond the key.
// The "blocked until" memory, the fail modes and the counters work as on
// the script path.
func (l *Limiter) decideInProcess(ctx context.Context, p Policy, key string, cost int64, take bool) (Decision, error) {
	c := l.compile(p)
	if c.err != nil {
		return Decision{}, c.err
	}
	if key == "" {
		return Decision{}, fmt.Errorf("%w: empty subject", ErrInvalidKey)
	}
	// The key is built in a pooled buffer, not allocated: the store copies
	// it if it keeps it (the Int64Updater contract), and so does every
	// memory of this limiter (strings.Clone below); nothing else outlives
	// the call.
	kb := keyBufs.Get().(*keyBuf)
	defer kb.put()
	buf, err := c.keyer.AppendKey(kb.b[:0], key)
	kb.b = buf
	if err != nil {
		return Decision{}, err
	}
	k := unsafe.String(unsafe.SliceData(buf), len(buf))
	d := Decision{Policy: p.Name, Limit: p.Limit, Window: p.Window}
	if l.blocked != nil && l.blocked.any() {
		if retry, reset, ok := l.blocked.check(k, cost, l.mono()); ok {
			d.RetryAfter, d.ResetAfter, d.Local = retry, reset, true
			l.stats.blockedHits.Add(1)
			l.decisions.Add(1)
			return d, nil
		}
	}
	u := store.Int64Update{Args: [6]int64{c.t, c.tau, cost, 0, c.burst}}
	if take {
		u.Args[3] = 1
	}
	// The timeout goes to the store as the longest it may wait for the key
	// (the only thing an in-process store waits for), instead of a context
	// with a deadline: a call that does not wait reads no clock for it.
	if l.timeout > 0 {
		u.Wait = l.timeout
	}
	u, err = l.upd.UpdateInt64(ctx, k, gcraUpdate, u)
	l.storeCalls.Add(1)
	if err != nil {
		if isInputError(err) {
			return Decision{}, err
		}
		mode := modePeek
		if take {
			mode = modeTake
		}
		items := [1]item{{req: Request{Policy: p, Key: key, Cost: cost}, c: c, key: strings.Clone(k)}}
		idx := [1]int{0}
		ds := [1]Decision{d}
		l.failGroup(items[:], idx[:], ds[:], err, mode)
		l.decisions.Add(1)
		return ds[0], nil
	}
	r := &u.Result
	d.Allowed = r[0] == 1
	d.Remaining = max(0, r[1])
	d.ResetAfter = time.Duration(r[2]) * time.Microsecond
	switch {
	case r[3] < 0:
		d.Never = true
	case r[3] > 0:
		d.RetryAfter = time.Duration(r[3]) * time.Microsecond
		if l.blocked != nil {
			now := l.mono()
			l.blocked.remember(strings.Clone(k), cost, now, now+d.RetryAfter, now+d.ResetAfter)
		}
	}
	l.decisions.Add(1)
	return d, nil
}

// keyBuf is a buffer decideInProcess builds keys in.
type keyBuf struct{ b []byte }

var keyBufs = sync.Pool{New: func() any { return &keyBuf{b: make([]byte, 0, 128)} }}

// put returns the buffer to the pool, unless a huge subject grew it.
func (kb *keyBuf) put() {
	if cap(kb.b) <= 1024 {
		keyBufs.Put(kb)
	}
}

// failGroup decides the items of one subject by their fail modes.
func (l *Limiter) failGroup(items []item, idx []int, ds []Decision, cause error, mode string) bool {
	all := true
	now := l.mono()
	for _, i := range idx {
		it := &items[i]
		d := &ds[i]
		d.Degraded = cause
		p := it.req.Policy
		switch p.FailMode {
		case FailOpen:
			d.Allowed = true
			d.Remaining = 0
			l.stats.failedOpen.Add(1)
		case FailLocal:
			d.Allowed, d.Remaining, d.RetryAfter, d.ResetAfter, d.Never = l.local.decide(it.key, p, it.req.Cost, now, mode == modeTake)
			l.stats.failedLocal.Add(1)
		default:
			d.Allowed = false
			d.RetryAfter = l.failRetryAfter
			l.stats.failedClosed.Add(1)
		}
		if !d.Allowed {
			all = false
		}
	}
	return all
}

// refundGroups gives back the charges of the groups marked charged, and
// shows it in their decisions.
func (l *Limiter) refundGroups(ctx context.Context, items []item, order []int, groups [][2]int, charged []bool, ds []Decision) {
	for g, span := range groups {
		if !charged[g] {
			continue
		}
		charged[g] = false
		idx := order[span[0]:span[1]]
		keys := make([]string, 0, len(idx))
		args := []string{modeRefund}
		for _, i := range idx {
			it := &items[i]
			keys = append(keys, it.key)
			args = append(args, it.c.alg, it.c.a, it.c.b, strconv.FormatInt(it.req.Cost, 10))
		}
		cctx, cancel := l.withTimeout(ctx)
		_, err := l.s.Eval(cctx, decideScript, keys, args...)
		cancel()
		l.storeCalls.Add(1)
		if err != nil {
			l.stats.refundErrors.Add(1)
			continue
		}
		l.stats.refunds.Add(1)
		for _, i := range idx {
			ds[i].Remaining = min(ds[i].Remaining+items[i].req.Cost, items[i].c.burst)
		}
	}
}
