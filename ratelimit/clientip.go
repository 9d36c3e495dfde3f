package ratelimit

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP finds the address of the client behind a chain of trusted
// proxies. The peer (Request.RemoteAddr) is the only address nobody can
// forge: unless it is in a trusted CIDR, the headers are ignored and the
// peer is the client. Behind trusted proxies, the Forwarded header (RFC
// 7239) if present, else X-Forwarded-For, is walked from right to left
// (the entries the trusted proxies appended), skipping trusted addresses;
// the first untrusted one is the client. An entry that is not an address
// ("unknown", an obfuscated identifier, garbage) stops the walk: the last
// trusted hop is returned, since nothing to its left can be verified.
type ClientIP struct {
	trusted []netip.Prefix
}

// NewClientIP returns a ClientIP that trusts the given CIDRs
// ("10.0.0.0/8", "2001:db8::/32") or single addresses. None trusts nobody:
// the peer address is used.
func NewClientIP(trusted ...string) (*ClientIP, error) {
	c := &ClientIP{}
	for _, s := range trusted {
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("karat/ratelimit: trusted proxy %q: %w", s, err)
			}
			a = a.Unmap()
			c.trusted = append(c.trusted, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("karat/ratelimit: trusted proxy %q: %w", s, err)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		c.trusted = append(c.trusted, p.Masked())
	}
	return c, nil
}

func (c *ClientIP) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Addr returns the client's address, or false when even the peer address
// cannot be parsed.
func (c *ClientIP) Addr(r *http.Request) (netip.Addr, bool) {
	peer, ok := parseHostPort(r.RemoteAddr)
	if !ok {
		return netip.Addr{}, false
	}
	if !c.isTrusted(peer) {
		return peer, true
	}
	var chain []string
	if fwd := r.Header.Values("Forwarded"); len(fwd) > 0 {
		chain = forwardedFor(fwd)
	} else {
		for _, v := range r.Header.Values("X-Forwarded-For") {
			for _, e := range strings.Split(v, ",") {
				chain = append(chain, strings.TrimSpace(e))
			}
		}
	}
	client := peer
	for i := len(chain) - 1; i >= 0; i-- {
		a, ok := parseNode(chain[i])
		if !ok {
			return client, true
		}
		client = a
		if !c.isTrusted(a) {
			return a, true
		}
	}
	return client, true
}

// Key is a KeyFunc: "ip4:203.0.113.9" for IPv4, "ip6:2001:db8:1:2::/64" for
// IPv6 (a /64 is what one customer usually gets, so it is one client).
func (c *ClientIP) Key(r *http.Request) (string, error) {
	a, ok := c.Addr(r)
	if !ok {
		return "", fmt.Errorf("%w: cannot parse the peer address %q", ErrInvalidKey, r.RemoteAddr)
	}
	return AddrKey(a), nil
}

// AddrKey is the subject key of an address: IPv4 as is, IPv6 grouped by /64.
func AddrKey(a netip.Addr) string {
	a = a.Unmap()
	if a.Is4() {
		return "ip4:" + a.String()
	}
	p, _ := a.WithZone("").Prefix(64)
	return "ip6:" + p.String()
}

func parseHostPort(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// parseNode reads an X-Forwarded-For entry or a Forwarded for= value: an
// address, with or without a port, IPv6 possibly in brackets.
func parseNode(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(strings.Trim(strings.TrimSpace(s), `"`))
	if s == "" {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	return parseHostPort(s)
}

// forwardedFor returns the for= values of Forwarded fields, in order. An
// element without for= gives "" (which stops the walk there).
func forwardedFor(fields []string) []string {
	var out []string
	for _, f := range fields {
		for _, elem := range splitQuoted(f, ',') {
			val := ""
			for _, pair := range splitQuoted(elem, ';') {
				k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "for") {
					val = strings.TrimSpace(v)
				}
			}
			out = append(out, val)
		}
	}
	return out
}

// splitQuoted splits s at sep outside double quotes.
func splitQuoted(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
