package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/karat-go/karat/httpapi/demo"
	"github.com/karat-go/karat/ratelimit"
	"github.com/karat-go/karat/session"
)

// SessionData is what the API keeps in a session besides what the session
// layer records: the user's role and identity, for authorisation without a
// directory lookup. It never holds a secret.
type SessionData struct {
	Role  string `json:"role"`
	Email string `json:"email"`
	Name  string `json:"name"`
}

// dataMemo keeps the decoded SessionData of the sessions this API has
// validated, by session ID and version, so that each request does not
// decode the same JSON again (it was 7 of a cached read's allocations).
// Update moves a session's version on, so an entry never goes stale; at
// dataMemoMax entries the memo is emptied.
type dataMemo struct {
	mu sync.RWMutex
	m  map[dataKey]SessionData
}

type dataKey struct {
	id  string
	ver uint64
}

const dataMemoMax = 4096

// get returns sess's data, decoded once per session version.
func (d *dataMemo) get(sess *session.Session) (SessionData, error) {
	k := dataKey{sess.ID, sess.Version}
	d.mu.RLock()
	v, ok := d.m[k]
	d.mu.RUnlock()
	if ok {
		return v, nil
	}
	if err := sess.Data(&v); err != nil {
		return SessionData{}, err
	}
	d.mu.Lock()
	if d.m == nil || len(d.m) >= dataMemoMax {
		d.m = make(map[dataKey]SessionData)
	}
	d.m[k] = v
	d.mu.Unlock()
	return v, nil
}

// Caller is the authenticated caller of a request.
type Caller struct {
	Session *session.Session
	Data    SessionData
	token   string
}

type callerKey struct{}

// CallerOf returns the caller Authenticate found, or nil.
func CallerOf(r *http.Request) *Caller {
	c, _ := r.Context().Value(callerKey{}).(*Caller)
	return c
}

// tokenOf returns the token a request carries: Authorization: Bearer first,
// then the session cookie. It never logs or echoes it.
func (a *API) tokenOf(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	if c, err := r.Cookie(a.opts.CookieName); err == nil {
		return c.Value
	}
	return ""
}

// Authenticate is middleware that requires a live session, from the
// session cookie or an Authorization: Bearer token: none, or one that names
// no live session, is 401; a store that does not answer is 503.
func (a *API) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := a.tokenOf(r)
		if tok == "" {
			unauthorized(w, r, "no session: log in and send the cookie or a Bearer token")
			return
		}
		ctx, cancel := a.storeCtx(r.Context())
		sess, err := a.sessions.Validate(ctx, tok)
		cancel()
		if errors.Is(err, session.ErrNotFound) {
			unauthorized(w, r, "the session is unknown, expired or revoked")
			return
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		c := &Caller{Session: sess, token: tok}
		if c.Data, err = a.dataMemo.get(sess); err != nil {
			writeError(w, r, err)
			return
		}
		setLogUser(r, sess.User, sess.Tenant)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
}

func unauthorized(w http.ResponseWriter, r *http.Request, detail string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="karat"`)
	WriteProblem(w, r, http.StatusUnauthorized, detail)
}

// sameTenant is middleware for /tenants/{tenant} routes: the tenant in the
// path, as the router decoded it, must be the caller's, byte for byte;
// anything else (another shop, a case variant, an encoding trick) is 403.
// Handlers then use the session's tenant, never the path's.
func (a *API) sameTenant(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := CallerOf(r)
		if c == nil || mux.Vars(r)["tenant"] != c.Session.Tenant {
			WriteProblem(w, r, http.StatusForbidden, "not your shop")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ownersOnly is middleware that refuses every role but owner with 403.
func (a *API) ownersOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := CallerOf(r); c == nil || c.Data.Role != demo.RoleOwner {
			WriteProblem(w, r, http.StatusForbidden, "owners only")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// decodeJSON reads a JSON body of at most max bytes into v. It answers the
// request itself (413 beyond max, 415 for another media type, 400 for
// malformed JSON) and returns false when it did.
func decodeJSON(w http.ResponseWriter, r *http.Request, max int64, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		WriteProblem(w, r, http.StatusUnsupportedMediaType, "send application/json")
		return false
	}
	if r.ContentLength > max {
		WriteProblem(w, r, http.StatusRequestEntityTooLarge, "body larger than the limit")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			WriteProblem(w, r, http.StatusRequestEntityTooLarge, "body larger than the limit")
			return false
		}
		WriteProblem(w, r, http.StatusBadRequest, "malformed JSON body")
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		WriteProblem(w, r, http.StatusBadRequest, "malformed JSON body: trailing data")
		return false
	}
	return true
}

// sessionJSON is a session as the API shows it: never a token.
type sessionJSON struct {
	ID              string    `json:"id"`
	Device          string    `json:"device"`
	UserAgent       string    `json:"user_agent"`
	IP              string    `json:"ip"`
	Created         time.Time `json:"created"`
	LastSeen        time.Time `json:"last_seen"`
	Expires         time.Time `json:"expires"`
	AbsoluteExpires time.Time `json:"absolute_expires"`
	Current         bool      `json:"current"`
}

func toJSON(s *session.Session, current bool) sessionJSON {
	return sessionJSON{ID: s.ID, Device: s.Device, UserAgent: s.UserAgent, IP: s.IP,
		Created: s.Created.UTC(), LastSeen: s.LastSeen.UTC(), Expires: s.Expires.UTC(),
		AbsoluteExpires: s.AbsoluteExpires.UTC(), Current: current}
}

// Limits on login fields, so that no key or log line gets a megabyte.
const (
	maxEmail    = 320
	maxTenant   = 128
	maxPassword = 1024
	maxDevice   = 200
)

type loginRequest struct {
	Tenant   string `json:"tenant"`
	Email    string `json:"email"`
	Password string `json:"password"`
	Device   string `json:"device"`
}

// login checks credentials under the login policy, which counts failed
// attempts per client IP + email. To hold "the 6th failure is 429" however
// concurrent the attempts, each attempt reserves one unit of the policy
// before the password is checked (so no more than Limit checks run per
// window), and a successful login gives the reservation back by resetting
// that IP + email's count: the user has just proved the email is theirs.
// A session the client already sent is rotated (same user) or ended (other
// user).
func (a *API) login(w http.ResponseWriter, r *http.Request) {
	var in loginRequest
	if !decodeJSON(w, r, a.opts.MaxBodyBytes, &in) {
		return
	}
	if in.Tenant == "" || in.Email == "" || in.Password == "" {
		WriteProblem(w, r, http.StatusBadRequest, "tenant, email and password are required")
		return
	}
	if len(in.Tenant) > maxTenant || len(in.Email) > maxEmail || len(in.Password) > maxPassword || len(in.Device) > maxDevice {
		WriteProblem(w, r, http.StatusBadRequest, "a field is too long")
		return
	}
	ipKey, err := a.clientKey(r)
	if err != nil {
		WriteProblem(w, r, http.StatusBadRequest, "cannot tell the client's address")
		return
	}
	limitKey := ipKey + "|email:" + emailKey(in.Email)
	if !a.decide(w, r, ratelimit.Request{Policy: a.pol.Login, Key: limitKey, Cost: 1}) {
		return
	}
	user, err := a.users.Authenticate(r.Context(), in.Tenant, in.Email, in.Password)
	if errors.Is(err, demo.ErrBadCredentials) {
		a.log.Info("login failed", "tenant", in.Tenant, "peer", peerIP(r))
		unauthorized(w, r, "wrong tenant, email or password")
		return
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	// One store budget (StoreTimeout) for everything after the password
	// check: giving back the reservation and creating the session. A store
	// that swallowed the first call's deadline does not get a second one,
	// so a login with the store away answers within LimitTimeout +
	// StoreTimeout plus the password hash.
	ctx, cancel := a.storeCtx(r.Context())
	defer cancel()
	// Give back the reservation: successful logins use no quota.
	if err := a.limiter.Reset(ctx, a.pol.Login, limitKey); err != nil {
		a.log.Warn("login: could not give back the login reservation", "err", err.Error())
	} else if d, err := a.limiter.Peek(ctx, a.pol.Login, limitKey, 1); err == nil {
		// The headers show the count after the reset, not the reservation.
		a.replaceDecision(r, a.pol.Login.Name, d)
	}

	data := SessionData{Role: user.Role, Email: user.Email, Name: user.Name}
	device := in.Device
	if device == "" {
		device = deviceLabel(r.UserAgent())
	}
	ua := r.UserAgent()
	if len(ua) > 512 {
		ua = ua[:512]
	}
	ip, _ := a.clientIP.Addr(r)
	var (
		token string
		sess  *session.Session
	)
	if old := a.tokenOf(r); old != "" {
		if prev, err := a.sessions.Validate(ctx, old); err == nil && prev.User == user.ID && !prev.InGrace {
			token, sess, err = a.sessions.Rotate(ctx, old)
			if err != nil && !errors.Is(err, session.ErrNotFound) {
				writeError(w, r, err)
				return
			}
		} else if err == nil {
			// Another user's session on this client: end it.
			if err := a.sessions.Revoke(ctx, old); err != nil && !errors.Is(err, session.ErrNotFound) {
				writeError(w, r, err)
				return
			}
		} else if !errors.Is(err, session.ErrNotFound) {
			writeError(w, r, err)
			return
		}
	}
	if sess == nil {
		token, sess, err = a.sessions.Create(ctx, user.ID, user.Tenant, session.Meta{
			Device: device, UserAgent: ua, IP: ip.String(), Data: data})
		if err != nil {
			writeError(w, r, err)
			return
		}
	}
	setLogUser(r, user.ID, user.Tenant)
	a.setCookie(w, token, sess.AbsoluteExpires)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"token":   token,
		"session": toJSON(sess, true),
		"user":    user,
	})
}

// deviceLabel makes a short label from a User-Agent.
func deviceLabel(ua string) string {
	switch {
	case ua == "":
		return "unknown device"
	case strings.Contains(ua, "curl/"):
		return "curl"
	case strings.Contains(ua, "Firefox/"):
		return "Firefox"
	case strings.Contains(ua, "Chrome/"):
		return "Chrome"
	case strings.Contains(ua, "Safari/"):
		return "Safari"
	}
	if len(ua) > 40 {
		ua = ua[:40]
	}
	return ua
}

func (a *API) setCookie(w http.ResponseWriter, token string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: a.opts.CookieName, Value: token, Path: "/", Expires: expires,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: a.opts.SecureCookies,
	})
}

func (a *API) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: a.opts.CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: a.opts.SecureCookies,
	})
}

func (a *API) logout(w http.ResponseWriter, r *http.Request) {
	c := CallerOf(r)
	ctx, cancel := a.storeCtx(r.Context())
	defer cancel()
	if err := a.sessions.Revoke(ctx, c.token); err != nil && !errors.Is(err, session.ErrNotFound) {
		writeError(w, r, err)
		return
	}
	a.clearCookie(w)
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) listSessions(w http.ResponseWriter, r *http.Request) {
	c := CallerOf(r)
	ctx, cancel := a.storeCtx(r.Context())
	defer cancel()
	list, err := a.sessions.List(ctx, c.Session.User)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := make([]sessionJSON, 0, len(list))
	for _, s := range list {
		out = append(out, toJSON(s, s.ID == c.Session.ID))
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

func (a *API) revokeSession(w http.ResponseWriter, r *http.Request) {
	c := CallerOf(r)
	id := mux.Vars(r)["id"]
	ctx, cancel := a.storeCtx(r.Context())
	defer cancel()
	err := a.sessions.RevokeByID(ctx, c.Session.User, id)
	if errors.Is(err, session.ErrNotFound) || errors.Is(err, session.ErrInvalid) {
		WriteProblem(w, r, http.StatusNotFound, "no such session of yours")
		return
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	if id == c.Session.ID {
		a.clearCookie(w)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) revokeOthers(w http.ResponseWriter, r *http.Request) {
	c := CallerOf(r)
	ctx, cancel := a.storeCtx(r.Context())
	defer cancel()
	n, err := a.sessions.RevokeOthers(ctx, c.Session.User, c.token)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"revoked": n})
}

type resetRequest struct {
	Email string `json:"email"`
}

// passwordReset answers 202 whatever the email, so that it tells nobody
// which emails exist; it is limited per client IP + email. The demo sends no
// mail.
func (a *API) passwordReset(w http.ResponseWriter, r *http.Request) {
	var in resetRequest
	if !decodeJSON(w, r, a.opts.MaxBodyBytes, &in) {
		return
	}
	if in.Email == "" || len(in.Email) > maxEmail {
		WriteProblem(w, r, http.StatusBadRequest, "email is required (at most 320 bytes)")
		return
	}
	ipKey, err := a.clientKey(r)
	if err != nil {
		WriteProblem(w, r, http.StatusBadRequest, "cannot tell the client's address")
		return
	}
	if !a.decide(w, r, ratelimit.Request{Policy: a.pol.PasswordReset, Key: ipKey + "|email:" + emailKey(in.Email), Cost: 1}) {
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "if the email is known, a reset link is on its way"})
}
