package session

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/karat-go/karat/internal/besteffort"
	"github.com/karat-go/karat/internal/sessionrec"
	"github.com/karat-go/karat/store"
)

// Errors of the session layer. Store errors (store.ErrUnavailable, ...) are
// returned wrapped, so errors.Is reaches them too.
var (
	// ErrNotFound: the token or id names no live session: unknown,
	// malformed, revoked, rotated away (after its grace), or expired.
	ErrNotFound = errors.New("karat/session: session not found")
	// ErrConflict: Update lost a race: the session's version moved on since
	// the caller read it. Read it again and retry.
	ErrConflict = errors.New("karat/session: version conflict")
	// ErrInvalid: an argument or option the layer refuses (an empty or
	// oversized user id, oversized metadata or data, no secret, ...).
	ErrInvalid = errors.New("karat/session: invalid argument")
)

// Clock is where the layer reads time. memstore.FakeClock implements it.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Codec encodes the app's data (Meta.Data, Update's data) into the session
// record and back.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSONCodec is the default Codec: encoding/json.
type JSONCodec struct{}

// Marshal implements Codec.
func (JSONCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal implements Codec.
func (JSONCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// Limits on what a session holds.
const (
	// MaxMetaLen bounds each of Meta's Device, UserAgent and IP, in bytes.
	MaxMetaLen = 4 << 10
	// DefaultMaxDataSize is Options.MaxDataSize's default.
	DefaultMaxDataSize = 64 << 10
)

// Options configure a Manager. The zero value of each field means its
// default.
type Options struct {
	// Namespace prefixes every key; default karat:session.
	Namespace store.Namespace
	// IdleTimeout ends a session this long after its last recorded
	// activity; default 30 minutes.
	IdleTimeout time.Duration
	// AbsoluteTimeout ends a session this long after its creation, whatever
	// happens; default 8 hours.
	AbsoluteTimeout time.Duration
	// TouchInterval is how old the recorded activity must be before a
	// validation writes a new one; default 1 minute. The idle timeout is
	// precise to within it (see the package doc). Use a millisecond to
	// record every validation.
	TouchInterval time.Duration
	// RotationGrace is how long a rotated-away token still validates
	// (read-only); default 0: not at all.
	RotationGrace time.Duration
	// MaxStale bounds how old a cached read may be, on a store with
	// store.CachedReader: a revocation through any instance is seen by every
	// other within it. Default 1 second; negative disables cached reads.
	MaxStale time.Duration
	// Clock is the layer's time, which decides every deadline; default the
	// machine's clock.
	Clock Clock
	// Codec encodes the app's data; default JSONCodec.
	Codec Codec
	// Shards is the number of slots (hash tags) users are spread over; each
	// holds its users' sessions, indexes and counters. Default 64. Changing
	// it for existing data orphans it: keep it fixed.
	Shards int
	// CleanupBatch bounds how many expired sessions one Cleanup call
	// removes; default 1000.
	CleanupBatch int
	// MaxDataSize bounds the encoded app data, in bytes; default 64 KiB.
	MaxDataSize int
	// PointerCache is how many token → session pointers this Manager keeps
	// in memory (about 200 bytes each), so that a validation reads only the
	// session record; default 65536, negative keeps none. Pointers never
	// change, and the record decides, so the cache is never stale in a way
	// that matters.
	PointerCache int
}

// Meta is what Create records about a session besides its user and tenant.
type Meta struct {
	Device    string // a label the user recognises ("Firefox on the shop's laptop")
	UserAgent string
	IP        string
	// Data is the app's own data (role, permissions, ...), encoded with the
	// Codec. nil stores nothing.
	Data any
}

// Session is a session as Validate, Create, Extend, Rotate and List return
// it. It never holds a token.
type Session struct {
	ID        string // public id: what listings and RevokeByID use
	User      string
	Tenant    string
	Device    string
	UserAgent string
	IP        string
	Created   time.Time
	LastSeen  time.Time // the last recorded activity (see TouchInterval)
	Expires   time.Time // when it ends unless activity is recorded: min(idle, absolute); for an InGrace token, when the grace ends if sooner
	// AbsoluteExpires is when it ends whatever happens.
	AbsoluteExpires time.Time
	// Version moves on with every Update; pass it to Update.
	Version uint64
	// InGrace is true when Validate accepted the token this session had
	// before its last Rotate, within the rotation grace. Such a token is
	// read-only: Update, Extend and Rotate refuse it.
	InGrace bool

	data  string
	codec Codec
}

// Data decodes the app's data into v. A session without data leaves v as it
// is.
func (s *Session) Data(v any) error {
	if s.data == "" {
		return nil
	}
	return s.codec.Unmarshal([]byte(s.data), v)
}

// RawData returns the app's data as the Codec encoded it.
func (s *Session) RawData() []byte { return []byte(s.data) }

// Stats are the layer's figures. See Manager.Stats for what each costs.
type Stats struct {
	Live    int64 // sessions neither revoked nor past their deadline, now
	Users   int64 // distinct users with at least one live session, now
	Created int64 // sessions ever created
	Revoked int64 // sessions ended by a Revoke* call (Rotate ends none)
	Expired int64 // sessions that reached their deadline (pruned or not yet)
	// InvalidTokens counts tokens this Manager was given that named no
	// session: malformed, unknown, rotated away or whose session ended.
	// It is this process's count, since the Manager started.
	InvalidTokens uint64
	// MalformedTokens is the part of InvalidTokens that was not even 64
	// lowercase hex characters (never looked up).
	MalformedTokens uint64
}

// Manager creates, validates and ends sessions over a store. It is safe for
// concurrent use; several Managers (processes) over one store see each
// other's sessions.
type Manager struct {
	s        store.Store
	cached   store.CachedStringReader
	hashers  []*hasher
	ns       store.Namespace
	prefix   string
	idle     int64 // ms
	abs      int64 // ms
	touch    int64 // ms
	grace    int64 // ms
	maxStale time.Duration
	clock    Clock
	codec    Codec
	shards   []shard
	batch    int
	maxData  int

	malformed atomic.Uint64
	unknown   atomic.Uint64
	cursor    atomic.Uint64
	ptrs      *ptrCache
}

// shard holds the precomputed key prefixes of one shard.
type shard struct {
	tag      string
	rec      string // prefix of record keys: ns:{tag}:r:
	live     string // live index: ns:{tag}:live
	counters string // counters: ns:{tag}:n
}

// New returns a Manager over s. secrets are the HMAC keys tokens are hashed
// with, newest first, each at least 32 bytes: new tokens use the first;
// tokens hashed under the others keep working, so a secret rotates by
// prepending a new one and dropping the oldest once AbsoluteTimeout has
// passed. nil opts is valid.
func New(s store.Store, secrets [][]byte, opts *Options) (*Manager, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil store", ErrInvalid)
	}
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no secret", ErrInvalid)
	}
	if opts == nil {
		opts = &Options{}
	}
	m := &Manager{s: s, ns: opts.Namespace, clock: opts.Clock, codec: opts.Codec, batch: opts.CleanupBatch, maxData: opts.MaxDataSize}
	for i, sec := range secrets {
		if len(sec) < 32 {
			return nil, fmt.Errorf("%w: secret %d has %d bytes, want at least 32", ErrInvalid, i, len(sec))
		}
		m.hashers = append(m.hashers, newHasher(sec))
	}
	if m.ns.IsZero() {
		m.ns = store.MustNamespace("karat", "session")
	}
	m.prefix = m.ns.Prefix()
	def := func(d, def time.Duration) (int64, error) {
		if d < 0 {
			return 0, fmt.Errorf("%w: negative duration %v", ErrInvalid, d)
		}
		if d == 0 {
			d = def
		}
		return int64(store.RoundTTL(d) / time.Millisecond), nil
	}
	var err error
	if m.idle, err = def(opts.IdleTimeout, 30*time.Minute); err != nil {
		return nil, err
	}
	if m.abs, err = def(opts.AbsoluteTimeout, 8*time.Hour); err != nil {
		return nil, err
	}
	if m.touch, err = def(opts.TouchInterval, time.Minute); err != nil {
		return nil, err
	}
	if opts.RotationGrace < 0 {
		return nil, fmt.Errorf("%w: negative RotationGrace", ErrInvalid)
	}
	m.grace = store.TTLMillis(opts.RotationGrace)
	m.maxStale = opts.MaxStale
	if m.maxStale == 0 {
		m.maxStale = time.Second
	}
	if cr, ok := store.Capability[store.CachedReader](s); ok && m.maxStale > 0 {
		m.cached = store.CachedStrings(cr) // a hit without a copy where the driver has one
	}
	if m.clock == nil {
		m.clock = systemClock{}
	}
	if m.codec == nil {
		m.codec = JSONCodec{}
	}
	if m.batch <= 0 {
		m.batch = 1000
	}
	if m.maxData <= 0 {
		m.maxData = DefaultMaxDataSize
	}
	switch {
	case opts.PointerCache == 0:
		m.ptrs = newPtrCache(1 << 16)
	case opts.PointerCache > 0:
		m.ptrs = newPtrCache(opts.PointerCache)
	}
	n := opts.Shards
	if n <= 0 {
		n = 64
	}
	m.shards = make([]shard, n)
	for i := range m.shards {
		tag := "s" + strconv.Itoa(i)
		live, err1 := m.ns.TaggedKey(tag, "live")
		counters, err2 := m.ns.TaggedKey(tag, "n")
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		m.shards[i] = shard{tag: tag, rec: m.prefix + "{" + tag + "}:r:", live: live, counters: counters}
	}
	return m, nil
}

func (m *Manager) nowMS() int64 { return m.clock.Now().UnixMilli() }

func (m *Manager) shardOf(user string) *shard {
	h := fnv.New64a()
	h.Write([]byte(user))
	return &m.shards[h.Sum64()%uint64(len(m.shards))]
}

// ptrKey is ns.TaggedKey(hex HMAC, "t"), built without the encoder (hex needs
// none).
func (m *Manager) ptrKey(h *[64]byte) string {
	var sb strings.Builder
	sb.Grow(len(m.prefix) + 68)
	sb.WriteString(m.prefix)
	sb.WriteByte('{')
	sb.Write(h[:])
	sb.WriteString("}:t")
	return sb.String()
}

func (m *Manager) ptrKeyOf(hash string) string {
	return m.prefix + "{" + hash + "}:t"
}

// userKeys returns the keys a script over user's sessions needs: the user's
// index, the shard's live index and counters.
func (m *Manager) userKeys(sh *shard, user string) (idx string, err error) {
	idx, err = m.ns.TaggedKey(sh.tag, "u", user)
	if err != nil {
		return "", fmt.Errorf("%w: user id: %w", ErrInvalid, err)
	}
	return idx, nil
}

func checkUser(user string) error {
	if user == "" {
		return fmt.Errorf("%w: empty user id", ErrInvalid)
	}
	if len(user) > store.MaxPartLen {
		return fmt.Errorf("%w: user id of %d bytes exceeds %d", ErrInvalid, len(user), store.MaxPartLen)
	}
	return nil
}

// get reads a key through the client-side cache when the store has one. The
// value comes as a string, which the decoders take: on a cache hit of a
// driver with store.CachedStringReader it is the cache's own memory, not a
// copy.
func (m *Manager) get(ctx context.Context, key string) (string, error) {
	if m.cached != nil {
		return m.cached.GetCachedString(ctx, key, m.maxStale)
	}
	b, err := m.s.Get(ctx, key)
	return string(b), err
}

func (m *Manager) session(r *sessionrec.Record, inGrace bool) *Session {
	return &Session{
		ID: r.ID, User: r.User, Tenant: r.Tenant, Device: r.Device, UserAgent: r.UserAgent, IP: r.IP,
		Created: time.UnixMilli(r.Created), LastSeen: time.UnixMilli(r.LastSeen),
		Expires: time.UnixMilli(r.Deadline()), AbsoluteExpires: time.UnixMilli(r.Abs),
		Version: uint64(r.Version), InGrace: inGrace, data: r.Data, codec: m.codec,
	}
}

// scriptErr maps the scripts' own errors to the layer's.
func scriptErr(op string, err error) error {
	var se *store.ScriptError
	if errors.As(err, &se) {
		code, _, _ := strings.Cut(se.Message, " ")
		switch code {
		case "NOTFOUND":
			return ErrNotFound
		case "CONFLICT":
			return ErrConflict
		}
	}
	return fmt.Errorf("karat/session: %s: %w", op, err)
}

// Create starts a session for user in tenant and returns its token, which
// the caller hands to the client and which the store never sees: only its
// HMAC is kept. The user id is any non-empty string up to store.MaxPartLen
// bytes; the tenant too (it may be empty).
//
// The token's pointer is written before the session record: a crash between
// the two leaves a pointer to nothing, which validates to nothing and
// expires with the absolute timeout.
func (m *Manager) Create(ctx context.Context, user, tenant string, meta Meta) (string, *Session, error) {
	if err := checkUser(user); err != nil {
		return "", nil, err
	}
	if len(tenant) > store.MaxPartLen {
		return "", nil, fmt.Errorf("%w: tenant id of %d bytes exceeds %d", ErrInvalid, len(tenant), store.MaxPartLen)
	}
	if len(meta.Device) > MaxMetaLen || len(meta.UserAgent) > MaxMetaLen || len(meta.IP) > MaxMetaLen {
		return "", nil, fmt.Errorf("%w: device, user agent and IP are limited to %d bytes each", ErrInvalid, MaxMetaLen)
	}
	var data []byte
	if meta.Data != nil {
		var err error
		if data, err = m.codec.Marshal(meta.Data); err != nil {
			return "", nil, fmt.Errorf("%w: encoding data: %w", ErrInvalid, err)
		}
		if len(data) > m.maxData {
			return "", nil, fmt.Errorf("%w: data of %d bytes exceeds %d", ErrInvalid, len(data), m.maxData)
		}
	}
	sh := m.shardOf(user)
	idx, err := m.userKeys(sh, user)
	if err != nil {
		return "", nil, err
	}
	tok, raw, err := newToken()
	if err != nil {
		return "", nil, fmt.Errorf("karat/session: create: %w", err)
	}
	id, err := newID()
	if err != nil {
		return "", nil, fmt.Errorf("karat/session: create: %w", err)
	}
	var h [64]byte
	m.hashers[0].sum(&raw, &h)
	now := m.nowMS()
	r := sessionrec.Record{ID: id, User: user, Tenant: tenant, Cur: string(h[:]), Version: 1,
		Created: now, LastSeen: now, Idle: m.idle, Abs: now + m.abs,
		Device: meta.Device, UserAgent: meta.UserAgent, IP: meta.IP, Data: string(data)}
	ptr := m.ptrKey(&h)
	ok, err := m.s.SetNX(ctx, ptr, sessionrec.Pointer{ID: id, User: user}.Append(nil), time.Duration(m.abs)*time.Millisecond)
	if err != nil {
		return "", nil, fmt.Errorf("karat/session: create: %w", err)
	}
	if !ok { // 2^-256: a broken random source
		return "", nil, fmt.Errorf("karat/session: create: token collision")
	}
	_, err = m.s.Eval(ctx, sessionrec.Create, []string{sh.rec + id, idx, sh.live, sh.counters},
		r.Encode(), id, strconv.FormatInt(now, 10), strconv.FormatInt(r.Deadline(), 10), user)
	if err != nil {
		m.deleteAfter(ctx, ptr)
		return "", nil, scriptErr("create", err)
	}
	return tok, m.session(&r, false), nil
}

// resolved is a token found in the store: its hex HMAC under the secret
// whose pointer exists, and the pointer.
type resolved struct {
	hash [64]byte
	ptr  target
}

// resolve finds the pointer a token's HMAC names, trying each secret,
// newest first. Malformed and unknown tokens are counted and not found.
func (m *Manager) resolve(ctx context.Context, token string, res *resolved) error {
	var raw [32]byte
	if !parseToken(token, &raw) {
		m.malformed.Add(1)
		return ErrNotFound
	}
	return m.resolveRaw(ctx, &raw, res)
}

// resolveRaw is resolve for a token already parsed.
func (m *Manager) resolveRaw(ctx context.Context, raw *[32]byte, res *resolved) error {
	for _, hs := range m.hashers {
		hs.sum(raw, &res.hash)
		if t, ok := m.ptrs.get(&res.hash); ok {
			res.ptr = t
			return nil
		}
		pv, err := m.get(ctx, m.ptrKey(&res.hash))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("karat/session: reading a token pointer: %w", err)
		}
		p, ok := sessionrec.DecodePointer(pv)
		if !ok || !validID(p.ID) || p.User == "" {
			break
		}
		sh := m.shardOf(p.User)
		res.ptr = target{Pointer: p, sh: sh, rec: sh.rec + p.ID}
		m.ptrs.put(&res.hash, res.ptr)
		return nil
	}
	m.unknown.Add(1)
	return ErrNotFound
}

// reject counts a token whose pointer led to no record that accepts it,
// and forgets the pointer.
func (m *Manager) reject(res *resolved) error {
	m.unknown.Add(1)
	m.ptrs.drop(&res.hash)
	return ErrNotFound
}

// Validate returns the live session token names, or ErrNotFound. Malformed
// tokens (anything but 64 lowercase hex characters) are refused without
// asking the store; unknown ones are looked up under each secret. Neither is
// ever written, and both are counted in Stats.InvalidTokens.
//
// The token's pointer comes from this Manager's pointer cache or the store;
// the session record from the store, through its client-side cache when it
// has store.CachedReader, so a hit costs no round trip: a revocation through
// another instance is seen within MaxStale, and one through this instance
// at once. When the recorded activity is older than TouchInterval,
// Validate records it (one script call), unless the token is a rotated-away
// one within its grace.
func (m *Manager) Validate(ctx context.Context, token string) (*Session, error) {
	var raw [32]byte
	if !parseToken(token, &raw) { // before res, which escapes: a malformed token allocates nothing
		m.malformed.Add(1)
		return nil, ErrNotFound
	}
	var res resolved
	if err := m.resolveRaw(ctx, &raw, &res); err != nil {
		return nil, err
	}
	sh := res.ptr.sh
	rv, err := m.get(ctx, res.ptr.rec)
	if errors.Is(err, store.ErrNotFound) {
		return nil, m.reject(&res)
	}
	if err != nil {
		return nil, fmt.Errorf("karat/session: reading a session: %w", err)
	}
	r, ok := sessionrec.Decode(rv)
	if !ok || r.ID != res.ptr.ID || r.User != res.ptr.User {
		return nil, m.reject(&res)
	}
	now := m.nowMS()
	inGrace := false
	switch {
	case sameMAC(r.Cur, res.hash[:]):
	case sameMAC(r.Prev, res.hash[:]) && now < r.PrevUntil:
		inGrace = true
	default:
		return nil, m.reject(&res)
	}
	if now >= r.Deadline() {
		return nil, ErrNotFound
	}
	if !inGrace && now-r.LastSeen >= m.touch {
		return m.touchAt(ctx, sh, &res, now, m.touch)
	}
	sess := m.session(&r, inGrace)
	if inGrace && r.PrevUntil < r.Deadline() {
		sess.Expires = time.UnixMilli(r.PrevUntil) // this token's end, not the session's
	}
	return sess, nil
}

func (m *Manager) touchAt(ctx context.Context, sh *shard, res *resolved, now, interval int64) (*Session, error) {
	idx, err := m.userKeys(sh, res.ptr.User)
	if err != nil {
		return nil, err
	}
	v, err := m.s.Eval(ctx, sessionrec.Touch, []string{res.ptr.rec, idx, sh.live},
		string(res.hash[:]), strconv.FormatInt(now, 10), strconv.FormatInt(interval, 10))
	if err != nil {
		return nil, scriptErr("touch", err)
	}
	r, ok := sessionrec.Decode(string(v.Bytes))
	if !ok {
		return nil, fmt.Errorf("karat/session: touch returned a malformed record")
	}
	return m.session(&r, false), nil
}

// Extend records activity now, whatever TouchInterval says, moving the idle
// deadline; nothing moves the absolute deadline. It needs the current token.
func (m *Manager) Extend(ctx context.Context, token string) (*Session, error) {
	var res resolved
	if err := m.resolve(ctx, token, &res); err != nil {
		return nil, err
	}
	return m.touchAt(ctx, res.ptr.sh, &res, m.nowMS(), 0)
}

// Update replaces the app's data of the session token names, if its version
// is still version (Session.Version from Validate), and returns the new
// version. A concurrent writer that got there first makes it return
// ErrConflict: read the session again and retry. It needs the current token.
func (m *Manager) Update(ctx context.Context, token string, version uint64, data any) (uint64, error) {
	var res resolved
	if err := m.resolve(ctx, token, &res); err != nil {
		return 0, err
	}
	var enc []byte
	if data != nil {
		var err error
		if enc, err = m.codec.Marshal(data); err != nil {
			return 0, fmt.Errorf("%w: encoding data: %w", ErrInvalid, err)
		}
		if len(enc) > m.maxData {
			return 0, fmt.Errorf("%w: data of %d bytes exceeds %d", ErrInvalid, len(enc), m.maxData)
		}
	}
	v, err := m.s.Eval(ctx, sessionrec.Update, []string{res.ptr.rec},
		string(res.hash[:]), strconv.FormatInt(m.nowMS(), 10), strconv.FormatUint(version, 10), string(enc))
	if err != nil {
		return 0, scriptErr("update", err)
	}
	return uint64(v.Int), nil
}

// Rotate gives the session token names a new token (on login and on a
// change of privilege) and returns it: same id, data and creation time, same
// absolute deadline. The old token validates, read-only, for RotationGrace,
// then is not found. It needs the current token.
//
// Order: the new token's pointer is written first, then the record switches
// tokens in one script, then the old pointer is shortened to the grace (or
// deleted). A crash in between leaves only a pointer that the record does
// not accept.
func (m *Manager) Rotate(ctx context.Context, token string) (string, *Session, error) {
	var res resolved
	if err := m.resolve(ctx, token, &res); err != nil {
		return "", nil, err
	}
	rec := res.ptr.rec
	cur, err := m.s.Get(ctx, rec)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, ErrNotFound
	}
	if err != nil {
		return "", nil, fmt.Errorf("karat/session: rotate: %w", err)
	}
	r, ok := sessionrec.Decode(string(cur))
	now := m.nowMS()
	if !ok || !sameMAC(r.Cur, res.hash[:]) || now >= r.Deadline() {
		return "", nil, ErrNotFound
	}
	tok, raw, err := newToken()
	if err != nil {
		return "", nil, fmt.Errorf("karat/session: rotate: %w", err)
	}
	var nh [64]byte
	m.hashers[0].sum(&raw, &nh)
	nptr := m.ptrKey(&nh)
	if _, err := m.s.SetNX(ctx, nptr, res.ptr.Pointer.Append(nil), time.Duration(r.Abs-now)*time.Millisecond); err != nil {
		return "", nil, fmt.Errorf("karat/session: rotate: %w", err)
	}
	v, err := m.s.Eval(ctx, sessionrec.Rotate, []string{rec},
		string(res.hash[:]), string(nh[:]), strconv.FormatInt(now, 10), strconv.FormatInt(m.grace, 10))
	if err != nil {
		m.deleteAfter(ctx, nptr)
		return "", nil, scriptErr("rotate", err)
	}
	nr, ok := sessionrec.Decode(string(v.Bytes))
	if !ok {
		return "", nil, fmt.Errorf("karat/session: rotate returned a malformed record")
	}
	// The rotation has happened: an old pointer left behind by a failure
	// here is harmless (the record no longer accepts it after the grace)
	// and expires with the absolute timeout.
	old := m.ptrKey(&res.hash)
	if keep := min(m.grace, nr.Abs-now); keep > 0 {
		_, _ = m.s.Expire(ctx, old, time.Duration(keep)*time.Millisecond)
	} else {
		m.ptrs.drop(&res.hash)
		_, _ = m.s.Delete(ctx, old)
	}
	return tok, m.session(&nr, false), nil
}

// Revoke ends the session token names (its current token, or its previous
// one within the rotation grace), or returns ErrNotFound.
func (m *Manager) Revoke(ctx context.Context, token string) error {
	var res resolved
	if err := m.resolve(ctx, token, &res); err != nil {
		return err
	}
	return m.revokeOne(ctx, res.ptr.User, res.ptr.ID, sessionrec.ModeToken, string(res.hash[:]))
}

// RevokeByID ends the session of user with the public id, or returns
// ErrNotFound (also for an id of another user's session).
func (m *Manager) RevokeByID(ctx context.Context, user, id string) error {
	if err := checkUser(user); err != nil {
		return err
	}
	if !validID(id) {
		return ErrNotFound
	}
	return m.revokeOne(ctx, user, id, sessionrec.ModeID, user)
}

func (m *Manager) revokeOne(ctx context.Context, user, id, mode, who string) error {
	sh := m.shardOf(user)
	idx, err := m.userKeys(sh, user)
	if err != nil {
		return err
	}
	v, err := m.s.Eval(ctx, sessionrec.Revoke, []string{sh.rec + id, idx, sh.live, sh.counters},
		mode, who, id, strconv.FormatInt(m.nowMS(), 10))
	if err != nil {
		return scriptErr("revoke", err)
	}
	if v.Kind != store.KindArray {
		return ErrNotFound
	}
	m.dropPointers(ctx, v.Array[1:])
	return nil
}

// dropPointers deletes the pointers of revoked tokens, each in its own slot.
// It is best effort: a pointer left behind names a record that is gone (or
// no longer accepts it) and expires with the absolute timeout.
func (m *Manager) dropPointers(ctx context.Context, hashes []store.Value) {
	keys := make([]string, 0, len(hashes))
	for _, h := range hashes {
		if len(h.Bytes) == 0 {
			continue
		}
		if len(h.Bytes) == 64 {
			var k [64]byte
			copy(k[:], h.Bytes)
			m.ptrs.drop(&k)
		}
		keys = append(keys, m.ptrKeyOf(string(h.Bytes)))
	}
	if len(keys) > 0 {
		m.deleteAfter(ctx, keys...)
	}
}

// deleteAfter deletes keys (each on its own: they may be in different
// slots) as a cleanup: within ctx's deadline, or in the background bounded
// by besteffort.Timeout when ctx is done (see besteffort.Do).
func (m *Manager) deleteAfter(ctx context.Context, keys ...string) {
	besteffort.Do(ctx, func(ctx context.Context) error {
		var first error
		for _, k := range keys {
			if _, err := m.s.Delete(ctx, k); err != nil && first == nil {
				first = err
			}
		}
		return first
	})
}

// RevokeOthers ends every session of user except the one keepToken names
// (the caller's own, say) and returns how many it ended. keepToken must name
// a live session of user, else ErrNotFound and nothing is ended.
func (m *Manager) RevokeOthers(ctx context.Context, user, keepToken string) (int, error) {
	if err := checkUser(user); err != nil {
		return 0, err
	}
	var res resolved
	if err := m.resolve(ctx, keepToken, &res); err != nil {
		return 0, err
	}
	if res.ptr.User != user {
		return 0, ErrNotFound
	}
	return m.revokeMany(ctx, user, sessionrec.ModeOthers, string(res.hash[:]))
}

// RevokeAll ends every session of user and returns how many it ended.
func (m *Manager) RevokeAll(ctx context.Context, user string) (int, error) {
	if err := checkUser(user); err != nil {
		return 0, err
	}
	return m.revokeMany(ctx, user, sessionrec.ModeAll, "")
}

// revokeMany reads the user's index and runs RevokeMany over the sessions it
// names; the script refuses (RETRY) if a session was created in between, and
// the loop reads the index again.
func (m *Manager) revokeMany(ctx context.Context, user, mode, keep string) (int, error) {
	sh := m.shardOf(user)
	idx, err := m.userKeys(sh, user)
	if err != nil {
		return 0, err
	}
	for range 32 {
		all, err := m.s.HGetAll(ctx, idx)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, fmt.Errorf("karat/session: reading the user's index: %w", err)
		}
		ids := make([]string, 0, len(all))
		for id := range all {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		v, err := m.many(ctx, sh, idx, user, mode, keep, ids)
		var se *store.ScriptError
		if errors.As(err, &se) && se.Message == sessionrec.MsgRetry {
			continue
		}
		if err != nil {
			return 0, scriptErr("revoke", err)
		}
		return int(v.Array[0].Int), nil
	}
	return 0, fmt.Errorf("%w: the user's sessions kept changing", ErrConflict)
}

func (m *Manager) many(ctx context.Context, sh *shard, idx, user, mode, keep string, ids []string) (store.Value, error) {
	keys := make([]string, 0, 3+len(ids))
	keys = append(keys, idx, sh.live, sh.counters)
	args := make([]string, 0, 4+len(ids))
	args = append(args, mode, strconv.FormatInt(m.nowMS(), 10), keep, user)
	for _, id := range ids {
		keys = append(keys, sh.rec+id)
		args = append(args, id)
	}
	v, err := m.s.Eval(ctx, sessionrec.RevokeMany, keys, args...)
	if err != nil {
		return v, err
	}
	if v.Kind != store.KindArray || len(v.Array) < 2 {
		return v, fmt.Errorf("karat/session: revoke returned %s", v)
	}
	m.dropPointers(ctx, v.Array[2:])
	return v, nil
}

// List returns the live sessions of user, oldest first, in two store calls
// (the user's index, then every record it names in one MGet: they share a
// slot), whatever the number of sessions of other users. Index entries of
// sessions that ended are pruned on the way (one more call).
func (m *Manager) List(ctx context.Context, user string) ([]*Session, error) {
	if err := checkUser(user); err != nil {
		return nil, err
	}
	sh := m.shardOf(user)
	idx, err := m.userKeys(sh, user)
	if err != nil {
		return nil, err
	}
	all, err := m.s.HGetAll(ctx, idx)
	if errors.Is(err, store.ErrNotFound) || len(all) == 0 {
		return []*Session{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("karat/session: list: %w", err)
	}
	ids := make([]string, 0, len(all))
	for id := range all {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = sh.rec + id
	}
	vals, err := m.s.MGet(ctx, keys...)
	if err != nil {
		return nil, fmt.Errorf("karat/session: list: %w", err)
	}
	now := m.nowMS()
	out := make([]*Session, 0, len(ids))
	var ended []string
	for i, val := range vals {
		if val == nil {
			ended = append(ended, ids[i])
			continue
		}
		r, ok := sessionrec.Decode(string(val))
		if !ok || r.User != user {
			continue
		}
		if now >= r.Deadline() {
			ended = append(ended, ids[i])
			continue
		}
		out = append(out, m.session(&r, false))
	}
	if len(ended) > 0 {
		if _, err := m.many(ctx, sh, idx, user, sessionrec.ModeExpired, "", ended); err != nil {
			return nil, scriptErr("list", err)
		}
	}
	slices.SortFunc(out, func(a, b *Session) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Cleanup prunes the next shard (round robin over Options.Shards): it reads
// the shard's live index (one call, O(sessions in the shard)) and removes up
// to CleanupBatch sessions past their deadline, with their index entries,
// one script call per user. It returns how many it removed. Call it
// periodically, Shards times per period to cover every shard; it never uses
// KEYS or SCAN. Validate, List and the Revoke calls prune lazily as well.
func (m *Manager) Cleanup(ctx context.Context) (int, error) {
	sh := &m.shards[m.cursor.Add(1)%uint64(len(m.shards))]
	all, err := m.s.HGetAll(ctx, sh.live)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("karat/session: cleanup: %w", err)
	}
	now := m.nowMS()
	byUser := map[string][]string{}
	n := 0
	for id, v := range all {
		dl, user, ok := sessionrec.SplitLive(string(v))
		if !ok || dl > now || !validID(id) {
			continue
		}
		if n == m.batch {
			break
		}
		byUser[user] = append(byUser[user], id)
		n++
	}
	removed := 0
	for user, ids := range byUser {
		idx, err := m.userKeys(sh, user)
		if err != nil {
			continue
		}
		slices.Sort(ids)
		v, err := m.many(ctx, sh, idx, user, sessionrec.ModeExpired, "", ids)
		if err != nil {
			return removed, scriptErr("cleanup", err)
		}
		removed += int(v.Array[1].Int)
	}
	return removed, nil
}

// Stats returns the layer's figures, each exact at the moment its shard was
// read: one script call per shard (Options.Shards calls), each O(sessions in
// the shard) on the server, since Live and Users compare every session's
// deadline with now (expiry is passive, so no counter can know it). Created,
// Revoked and Expired are counters kept by the scripts that create and end
// sessions (Expired adds the sessions past their deadline that are not yet
// pruned); InvalidTokens and MalformedTokens are this Manager's, in memory.
func (m *Manager) Stats(ctx context.Context) (Stats, error) {
	st := Stats{InvalidTokens: m.malformed.Load() + m.unknown.Load(), MalformedTokens: m.malformed.Load()}
	now := strconv.FormatInt(m.nowMS(), 10)
	for i := range m.shards {
		sh := &m.shards[i]
		v, err := m.s.Eval(ctx, sessionrec.Stats, []string{sh.live, sh.counters}, now)
		if err != nil {
			return Stats{}, fmt.Errorf("karat/session: stats: %w", err)
		}
		if v.Kind != store.KindArray || len(v.Array) != 6 {
			return Stats{}, fmt.Errorf("karat/session: stats returned %s", v)
		}
		a := v.Array
		st.Live += a[0].Int
		st.Users += a[1].Int
		st.Expired += a[2].Int + a[5].Int
		st.Created += a[3].Int
		st.Revoked += a[4].Int
	}
	return st, nil
}

// sameMAC compares a token MAC the record holds with the presented token's
// in constant time (crypto/subtle), so that the time a validation takes says
// nothing about how much of the MAC matched.
func sameMAC(stored string, mac []byte) bool {
	return subtle.ConstantTimeCompare([]byte(stored), mac) == 1
}
