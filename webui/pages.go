package webui

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/karat-go/karat/httpapi"
	"github.com/karat-go/karat/httpapi/demo"
)

// maxForm caps the body of every form the UI reads.
const maxForm = 16 << 10

func (u *UI) home(w http.ResponseWriter, r *http.Request) {
	if _, err := r.Cookie(u.opts.CookieName); err == nil {
		http.Redirect(w, r, "/devices", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/signin", http.StatusSeeOther)
}

// signinContent is the sign-in form and what happened to the last attempt.
type signinContent struct {
	Tenant, Email string
	Tenants       []string
	Notice        string // informational (signed out, session ended)
	Error         string // the attempt failed
	Locked        bool   // the error is the login policy's lockout
}

func (u *UI) signinPage(w http.ResponseWriter, r *http.Request) {
	c := signinContent{Tenants: demo.Tenants}
	switch {
	case r.URL.Query().Get("ended") != "":
		c.Notice = "Your session has ended: it was signed out, possibly from another device, or it expired. Sign in again."
	case r.URL.Query().Get("signedout") != "":
		c.Notice = "You are signed out."
	}
	u.render(w, http.StatusOK, "signin", pageData{Title: "Sign in", Nav: "signin", Content: c})
}

func (u *UI) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		u.renderError(w, r, http.StatusBadRequest, "Bad form", "The sign-in form could not be read.")
		return
	}
	c := signinContent{Tenants: demo.Tenants,
		Tenant: strings.TrimSpace(r.PostForm.Get("tenant")), Email: strings.TrimSpace(r.PostForm.Get("email"))}
	password := r.PostForm.Get("password")
	show := func(status int, msg string) {
		c.Error = msg
		u.render(w, status, "signin", pageData{Title: "Sign in", Nav: "signin", Content: c})
	}
	if c.Tenant == "" || c.Email == "" || password == "" {
		show(http.StatusBadRequest, "Enter the shop, your email and your password.")
		return
	}
	res, err := u.call(r, http.MethodPost, "/v1/auth/login", map[string]string{
		"tenant": c.Tenant, "email": c.Email, "password": password,
		"device": ParseUserAgent(r.UserAgent()).Device,
	})
	if err != nil {
		show(http.StatusInternalServerError, "Signing in failed; try again.")
		return
	}
	switch res.status {
	case http.StatusOK:
		forwardCookies(w, res)
		http.Redirect(w, r, "/devices", http.StatusSeeOther)
	case http.StatusUnauthorized:
		show(http.StatusUnauthorized, "Wrong shop, email or password.")
	case http.StatusTooManyRequests:
		ra := res.header.Get("Retry-After")
		w.Header().Set("Retry-After", ra)
		c.Locked = true
		s, _ := strconv.Atoi(ra)
		at := u.opts.Now().Add(time.Duration(max(s, 1)) * time.Second)
		show(http.StatusTooManyRequests, "Too many failed sign-ins for this email from your network. "+
			"Signing in is locked: try again in "+u.wait(ra)+" (after "+at.UTC().Format("15:04:05")+" UTC).")
	case http.StatusBadRequest:
		show(http.StatusBadRequest, "A field is too long or malformed.")
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", res.header.Get("Retry-After"))
		show(http.StatusServiceUnavailable, "The session store does not answer; try again in a few seconds.")
	default:
		show(http.StatusInternalServerError, "Signing in failed; try again.")
	}
}

func (u *UI) signout(w http.ResponseWriter, r *http.Request) {
	if _, err := r.Cookie(u.opts.CookieName); err != nil {
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	res, err := u.call(r, http.MethodPost, "/v1/auth/logout", nil)
	if err != nil {
		u.renderError(w, r, http.StatusInternalServerError, "Sign-out failed", "Try again.")
		return
	}
	switch res.status {
	case http.StatusNoContent:
		forwardCookies(w, res)
		http.Redirect(w, r, "/signin?signedout=1", http.StatusSeeOther)
	case http.StatusUnauthorized:
		u.clearCookie(w)
		http.Redirect(w, r, "/signin?signedout=1", http.StatusSeeOther)
	default:
		u.apiFailure(w, r, res.status, res.header.Get("Retry-After"))
	}
}

// sessionView is one row of the devices page, from GET /v1/sessions.
type sessionView struct {
	ID        string    `json:"id"`
	Device    string    `json:"device"`
	UserAgent string    `json:"user_agent"`
	IP        string    `json:"ip"`
	Created   time.Time `json:"created"`
	LastSeen  time.Time `json:"last_seen"`
	Expires   time.Time `json:"expires"`
	Current   bool      `json:"current"`
	Browser   string    `json:"-"`
}

type devicesContent struct {
	Sessions []sessionView
	Others   int
	Notice   string
	Error    string
}

func (u *UI) devices(w http.ResponseWriter, r *http.Request) {
	c := httpapi.CallerOf(r)
	res, err := u.call(r, http.MethodGet, "/v1/sessions", nil)
	if err != nil || res.status != http.StatusOK {
		u.failed(w, r, res, err)
		return
	}
	var out struct {
		Sessions []sessionView `json:"sessions"`
	}
	if err := res.decode(&out); err != nil {
		u.failed(w, r, nil, err)
		return
	}
	dc := devicesContent{Sessions: out.Sessions}
	for i := range dc.Sessions {
		s := &dc.Sessions[i]
		a := ParseUserAgent(s.UserAgent)
		s.Browser = a.Browser
		if s.Device == "" {
			s.Device = a.Device
		}
		if !s.Current {
			dc.Others++
		}
	}
	sort.SliceStable(dc.Sessions, func(i, j int) bool {
		a, b := dc.Sessions[i], dc.Sessions[j]
		if a.Current != b.Current {
			return a.Current
		}
		return a.LastSeen.After(b.LastSeen)
	})
	q := r.URL.Query()
	switch {
	case q.Get("revoked") != "":
		n, _ := strconv.Atoi(q.Get("revoked"))
		dc.Notice = "Signed out " + strconv.Itoa(max(n, 0)) + " other device" + plural(n) + "."
	case q.Get("ended") != "":
		dc.Notice = "That device is signed out. Its next page load goes to the sign-in page."
	case q.Get("gone") != "":
		dc.Error = "That session had already ended."
	}
	d := pageData{Title: "Your devices", Nav: "devices", Content: dc}
	u.withCaller(&d, c)
	u.render(w, http.StatusOK, "devices", d)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func (u *UI) signoutDevice(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		u.renderError(w, r, http.StatusBadRequest, "Bad form", "The form could not be read.")
		return
	}
	id := r.PostForm.Get("id")
	if id == "" || len(id) > 200 {
		http.Redirect(w, r, "/devices?gone=1", http.StatusSeeOther)
		return
	}
	res, err := u.call(r, http.MethodDelete, "/v1/sessions/"+url.PathEscape(id), nil)
	if err != nil {
		u.failed(w, r, nil, err)
		return
	}
	switch res.status {
	case http.StatusNoContent:
		if id == httpapi.CallerOf(r).Session.ID {
			forwardCookies(w, res)
			http.Redirect(w, r, "/signin?signedout=1", http.StatusSeeOther)
			return
		}
		http.Redirect(w, r, "/devices?ended=1", http.StatusSeeOther)
	case http.StatusNotFound:
		http.Redirect(w, r, "/devices?gone=1", http.StatusSeeOther)
	default:
		u.failed(w, r, res, nil)
	}
}

func (u *UI) signoutOthers(w http.ResponseWriter, r *http.Request) {
	res, err := u.call(r, http.MethodPost, "/v1/sessions/revoke-others", nil)
	if err != nil || res.status != http.StatusOK {
		u.failed(w, r, res, err)
		return
	}
	var out struct {
		Revoked int `json:"revoked"`
	}
	_ = res.decode(&out)
	http.Redirect(w, r, "/devices?revoked="+strconv.Itoa(out.Revoked), http.StatusSeeOther)
}

// failed answers a page whose API call failed: res's status, or 500 for a
// local error.
func (u *UI) failed(w http.ResponseWriter, r *http.Request, res *apiResult, err error) {
	if res == nil {
		if err != nil {
			u.log.Error("webui: API call", "err", err.Error())
		}
		u.renderError(w, r, http.StatusInternalServerError, "Something went wrong", "The page could not be built. Try again.")
		return
	}
	u.apiFailure(w, r, res.status, res.header.Get("Retry-After"))
}
