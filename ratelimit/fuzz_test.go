package ratelimit_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/karat-go/karat/ratelimit"
)

// This fuzz target was written for issue 12 (reliability); RELIABILITY.md
// lists what it asserts. Its corpus is under testdata/fuzz.

// FuzzClientIP: the client is the peer unless the peer is trusted; behind
// a trusted peer it is the peer or an address the headers hold.
func FuzzClientIP(f *testing.F) {
	f.Add("203.0.113.9:4242", "", "")
	f.Add("10.0.0.1:1", "198.51.100.7, 10.0.0.2", "")
	f.Add("10.0.0.1:1", "1.2.3.4", `for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"`)
	f.Add("10.0.0.1:1", "unknown, 10.0.0.3", "for=unknown")
	f.Add("[2001:db8::1]:80", "::1", "for=_hidden")
	f.Add("garbage", "\x00", "for=\"\xff")
	f.Add("10.0.0.1:1", strings.Repeat("1.1.1.1,", 1000), "")
	cip, err := ratelimit.NewClientIP("10.0.0.0/8", "2001:db8:ffff::/48")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, peer, xff, fwd string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = peer
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		if fwd != "" {
			r.Header.Set("Forwarded", fwd)
		}
		addr, ok := cip.Addr(r)
		key, kerr := cip.Key(r)
		peerAP, perr := netip.ParseAddrPort(peer)
		if !ok {
			if perr == nil {
				t.Fatalf("peer %q parses but Addr found nothing", peer)
			}
			return
		}
		if kerr != nil || key == "" {
			t.Fatalf("Addr found %v but Key = %q, %v", addr, key, kerr)
		}
		if !addr.IsValid() {
			t.Fatalf("Addr returned an invalid address for peer %q", peer)
		}
		peerAddr := peerAP.Addr().Unmap()
		trusted := perr == nil && (netip.MustParsePrefix("10.0.0.0/8").Contains(peerAddr) ||
			netip.MustParsePrefix("2001:db8:ffff::/48").Contains(peerAddr))
		if !trusted {
			if perr == nil && addr != peerAddr {
				t.Fatalf("untrusted peer %q, yet the client is %v (XFF %q, Forwarded %q)", peer, addr, xff, fwd)
			}
			return
		}
		// Behind a trusted peer the client is the peer or an address the
		// headers hold; never one made up.
		if addr != peerAddr && !mentions(xff+" "+fwd, addr) {
			t.Fatalf("client %v appears nowhere in XFF %q / Forwarded %q (peer %q)", addr, xff, fwd, peer)
		}
	})
}

// mentions reports whether text holds a spelling of a.
func mentions(text string, a netip.Addr) bool {
	text = strings.ToLower(text)
	if strings.Contains(text, a.String()) || strings.Contains(text, a.StringExpanded()) {
		return true
	}
	// Any address-looking token of text that parses to a.
	for _, tok := range strings.FieldsFunc(text, func(r rune) bool {
		return r == ',' || r == ' ' || r == ';' || r == '"' || r == '=' || r == '[' || r == ']' || r == '\t'
	}) {
		if p, err := netip.ParseAddr(tok); err == nil && p.Unmap() == a {
			return true
		}
		if p, err := netip.ParseAddrPort(tok); err == nil && p.Addr().Unmap() == a {
			return true
		}
		if h, _, ok := strings.Cut(tok, ":"); ok {
			if p, err := netip.ParseAddr(h); err == nil && p.Unmap() == a {
				return true
			}
		}
	}
	return false
}

var (
	fuzzSFItem   = `"[A-Za-z0-9._~-]+"(;[a-z]+=(-?[0-9]+|:[A-Za-z0-9+/=]*:))*`
	fuzzSFList   = regexp.MustCompile(`^` + fuzzSFItem + `(, ` + fuzzSFItem + `)*$`)
	fuzzLegacyRe = regexp.MustCompile(`^[0-9]+$`)
)

// FuzzRateLimitHeaders: the fields are structured-field lists of the
// draft's grammar, the legacy ones integers, and the subject key never shows.
func FuzzRateLimitHeaders(f *testing.F) {
	f.Add("api", int64(100), int64(900_000), "ip4:203.0.113.9", int64(99), int64(9000), int64(0), true)
	f.Add("login", int64(5), int64(1), "", int64(0), int64(0), int64(1), false)
	f.Add("x", int64(1<<50), int64(366*24*3600*1000), "\n\r\x00", int64(-5), int64(-1), int64(1<<40), true)
	f.Fuzz(func(t *testing.T, name string, limit, windowMS int64, key string, remaining, resetMS, retryMS int64, legacy bool) {
		p := ratelimit.Policy{Name: name, Limit: limit, Window: time.Duration(windowMS) * time.Millisecond}
		if p.Validate() != nil {
			return // such a policy never decides
		}
		d := ratelimit.Decision{Policy: name, Allowed: retryMS <= 0, Limit: limit, Window: p.Window,
			Remaining: max(0, min(remaining, limit)), ResetAfter: time.Duration(max(0, resetMS)) * time.Millisecond,
			RetryAfter: time.Duration(max(0, retryMS)) * time.Millisecond}
		h := http.Header{}
		ratelimit.SetHeaders(h, []ratelimit.Request{{Policy: p, Key: key, Cost: 1}}, []ratelimit.Decision{d}, legacy)
		for _, name := range []string{"RateLimit-Policy", "RateLimit"} {
			v := h.Get(name)
			if !fuzzSFList.MatchString(v) {
				t.Fatalf("%s: %q is not a structured-field list of the draft's shape", name, v)
			}
		}
		for _, name := range []string{"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} {
			if v := h.Get(name); legacy && !fuzzLegacyRe.MatchString(v) || !legacy && v != "" {
				t.Fatalf("%s = %q (legacy %v)", name, v, legacy)
			}
		}
		if key != "" && strings.Contains(h.Get("RateLimit"), key) && len(key) > 3 {
			t.Fatalf("the subject key %q appears in the header %q", key, h.Get("RateLimit"))
		}
	})
}
