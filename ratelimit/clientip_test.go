package ratelimit

import (
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClientIP(t *testing.T) {
	c, err := NewClientIP("10.0.0.0/8", "192.168.1.1", "fd00::/8")
	require.NoError(t, err)
	cases := []struct {
		name, remote string
		hdr          map[string][]string
		want         string
	}{
		{"untrusted peer, headers ignored", "198.51.100.7:1", map[string][]string{"X-Forwarded-For": {"1.2.3.4"}, "Forwarded": {"for=1.2.3.4"}}, "ip4:198.51.100.7"},
		{"trusted peer, no header", "10.1.2.3:1", nil, "ip4:10.1.2.3"},
		{"xff right to left", "10.0.0.1:1", map[string][]string{"X-Forwarded-For": {"6.6.6.6, 203.0.113.5, 10.9.9.9"}}, "ip4:203.0.113.5"},
		{"xff several fields", "10.0.0.1:1", map[string][]string{"X-Forwarded-For": {"6.6.6.6", "203.0.113.5", "192.168.1.1"}}, "ip4:203.0.113.5"},
		{"xff garbage stops at last trusted", "10.0.0.1:1", map[string][]string{"X-Forwarded-For": {"203.0.113.5, nonsense, 10.2.2.2"}}, "ip4:10.2.2.2"},
		{"xff all trusted", "10.0.0.1:1", map[string][]string{"X-Forwarded-For": {"10.3.3.3, 10.2.2.2"}}, "ip4:10.3.3.3"},
		{"xff with port", "10.0.0.1:1", map[string][]string{"X-Forwarded-For": {"203.0.113.5:8080"}}, "ip4:203.0.113.5"},
		{"forwarded wins over xff", "10.0.0.1:1", map[string][]string{"Forwarded": {`for=203.0.113.60;proto=http;by=10.0.0.1`}, "X-Forwarded-For": {"6.6.6.6"}}, "ip4:203.0.113.60"},
		{"forwarded ipv6 quoted with port", "[fd00::1]:1", map[string][]string{"Forwarded": {`for="[2001:db8:cafe::17]:4711"`}}, "ip6:2001:db8:cafe::/64"},
		{"forwarded list", "10.0.0.1:1", map[string][]string{"Forwarded": {`for=6.6.6.6, for=198.51.100.17;by=x, for=10.4.4.4`}}, "ip4:198.51.100.17"},
		{"forwarded unknown stops", "10.0.0.1:1", map[string][]string{"Forwarded": {`for=6.6.6.6, for=unknown, for=10.4.4.4`}}, "ip4:10.4.4.4"},
		{"forwarded quoted comma", "10.0.0.1:1", map[string][]string{"Forwarded": {`for=6.6.6.6;x="a,b", for=198.51.100.1`}}, "ip4:198.51.100.1"},
		{"ipv6 peer grouped", "[2001:db8:1:2:3:4:5:6]:443", nil, "ip6:2001:db8:1:2::/64"},
		{"mapped ipv4 peer", "[::ffff:198.51.100.7]:1", nil, "ip4:198.51.100.7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for k, vs := range tc.hdr {
				for _, v := range vs {
					r.Header.Add(k, v)
				}
			}
			got, err := c.Key(r)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "not an address"
	_, err = c.Key(r)
	assert.ErrorIs(t, err, ErrInvalidKey)
	_, err = NewClientIP("10.0.0.0/33")
	assert.Error(t, err)
	_, err = NewClientIP("nonsense")
	assert.Error(t, err)
}

func TestNoTrustNoHeaders(t *testing.T) {
	c, err := NewClientIP()
	require.NoError(t, err)
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.1:5"
	r.Header.Set("X-Forwarded-For", "1.1.1.1")
	k, err := c.Key(r)
	require.NoError(t, err)
	assert.Equal(t, "ip4:10.0.0.1", k)
}
