package drivers

import (
	"context"
	"strings"
	"testing"
)

// userInfoShapes are URLs whose user-info holds the markers Q, X and Z,
// which appear nowhere else in them nor in any message karat or the
// libraries write: an error that contains one leaks a fragment of it.
var userInfoShapes = []string{
	"redis://QQQ:XXX/ZZZ@127.0.0.1:1",
	"redis://QQQ:XX#ZZ@127.0.0.1:1",
	"redis://QQQ:XX?ZZ@127.0.0.1:1",
	"redis://QQQ:XX@ZZ@127.0.0.1:1",
	"redis://QQQ:XX:ZZ@127.0.0.1:1",
	"redis://QQQ:123/ZZZ@127.0.0.1:1",     // net/url would take "QQQ:123" as the host
	"redis://QQQ:123/XX@127.0.0.1:1/0",    // and here a path of "/XX@127.0.0.1:1/0"
	"redis://:XX/ZZ@127.0.0.1:1/0",        // no user name
	"redis://QQQ:XX/ZZ@localhost",         // no port
	"redis://QQQ:XX/ZZ@localhost:99999",   // bad port
	"redis://QQQ:XX/ZZ@127.0.0.1:1/notdb", // bad database
	"redis://QQQ:XX/ZZ@127.0.0.1:1?driver=bad",
	"redis://QQQ:XX%ZZ@127.0.0.1:1",   // bad escape
	"redis://QQQ:XX%2FZZ@127.0.0.1:1", // good escape
	"redis://QQQ:XX\nZZ@127.0.0.1:1",  // a control character
	"redis://QQQ:XX ZZ@127.0.0.1:1",
	"redis://QQQ:XX/ZZ@[::1:1",
	"redis://QQQ:XX/ZZ@",
	"redis://QQQ:XX/ZZ@/0",
	"redis://Q@Q:X/X@Z:Z@127.0.0.1:1",
	"redis+cluster://QQQ:XX/ZZ@127.0.0.1:1,127.0.0.1:2/3",
	"redis+sentinel://QQQ:XX/ZZ@127.0.0.1:1",
	"redis+sentinel://QQQ:XX/ZZ@127.0.0.1:1/m/x",
	"rediss://QQQ:XX/ZZ@127.0.0.1:1?tls_ca=/does/not/exist",
	"rediss://QQQ:XX/ZZ@127.0.0.1:1?tls_ca=/a@b/ca.pem",
	"rediss://127.0.0.1:1?tls_ca=/QQ@b/ca.pem", // the '@' is taken for the end of a user-info
	"memory://QQQ:XX/ZZ@",
	"memory://QQQ:XX/ZZ@host",
	"QQQ:XX/ZZ@127.0.0.1:1",
	"//QQQ:XX/ZZ@127.0.0.1:1",
	"redis:/QQQ:XX/ZZ@127.0.0.1:1",
	"mysql://QQQ:XX/ZZ@127.0.0.1:1",
	"redis://QQQ:XX/ZZ@127.0.0.1:1,", // an empty host in the list
	"redis://QQQ:XX/ZZ@%zz:1",
}

func checkNoUserInfo(t *testing.T, raw string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if msg := err.Error(); strings.ContainsAny(msg, "QXZ") {
		t.Errorf("Open(%q) leaks user-info: %v", raw, msg)
	}
}

// TestOpenNeverLeaksUserInfo: however malformed the URL, no piece of its
// user-info reaches an error. Every shape here fails to open (port 1 on
// loopback refuses connections), some while parsing, some while dialling.
func TestOpenNeverLeaksUserInfo(t *testing.T) {
	for _, raw := range userInfoShapes {
		s, err := Open(context.Background(), raw)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", raw)
			continue
		}
		checkNoUserInfo(t, raw, err)
	}
}

// TestParseURLUserInfo: a password holding '/', '#', '?', '@' or ':'
// unescaped is taken whole, and the host after it is found. An '@' in the
// query is written %40.
func TestParseURLUserInfo(t *testing.T) {
	for raw, want := range map[string][3]string{ // user, password, host
		"redis://u:s3cr/etpw@host:6379":               {"u", "s3cr/etpw", "host:6379"},
		"redis://u:a#b?c@host:6379/2":                 {"u", "a#b?c", "host:6379"},
		"redis://u:p@ss@word@host:6379":               {"u", "p@ss@word", "host:6379"},
		"redis://u:a:b@host:6379":                     {"u", "a:b", "host:6379"},
		"redis://u:s3cr%2Fet@host:6379":               {"u", "s3cr/et", "host:6379"},
		"redis://:pw@h1:1,h2:2":                       {"", "pw", "h1:1,h2:2"},
		"rediss://u:p@host:6379?tls_ca=/a%40b/ca.pem": {"u", "p", "host:6379"},
		"rediss://host:6379?tls_ca=/a%40b/ca.pem":     {"", "", "host:6379"},
		"redis+sentinel://u:x/y@h:1/master?driver=go": {"u", "x/y", "h:1"},
	} {
		u, err := parseURL(raw)
		if err != nil {
			t.Errorf("parseURL(%q): %v", raw, err)
			continue
		}
		pass, _ := u.User.Password()
		if got := [3]string{u.User.Username(), pass, u.Host}; got != want {
			t.Errorf("parseURL(%q) = user %q, password %q, host %q; want %q", raw, got[0], got[1], got[2], want)
		}
	}
}

// FuzzOpenRedactsUserInfo builds URLs whose user name and password are any
// mix of the markers Q, X, Z and the characters that break URLs, over hosts
// and tails of several shapes, and opens them with a done context (nothing
// is dialled): no error may hold a marker, and a URL that parses keeps the
// password whole.
func FuzzOpenRedactsUserInfo(f *testing.F) {
	f.Add("QXZ", "Q/X#Z?Q@X:Z", uint8(0), uint8(0))
	f.Add("Q", "XZ%2", uint8(1), uint8(3))
	f.Add("", "Z@127.0.0.1:1", uint8(2), uint8(5))
	const alphabet = "QXZ/#?@:%[] \n,.0123456789"
	hosts := []string{"127.0.0.1:1", "h:1,h:2", "localhost", "[::1]:6379", "", "a:1,"}
	tails := []string{"", "/0", "/bad", "?driver=goredis", "?tls_ca=/a@b", "#frag", "/m/1", "?client_cache=0&driver=rueidis"}
	schemes := []string{"redis", "rediss", "redis+cluster", "redis+sentinel", "memory"}
	mapped := func(s string) string {
		b := []byte(s)
		for i := range b {
			b[i] = alphabet[int(b[i])%len(alphabet)]
		}
		return string(b)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	f.Fuzz(func(t *testing.T, user, pass string, shape, scheme uint8) {
		user, pass = mapped(user), mapped(pass)
		host := hosts[int(shape)%len(hosts)]
		tail := tails[int(shape/8)%len(tails)]
		sc := schemes[int(scheme)%len(schemes)]
		raw := sc + "://" + user + ":" + pass + "@" + host + tail
		s, err := Open(done, raw)
		if s != nil {
			s.Close()
		}
		checkNoUserInfo(t, raw, err)
		// Open stops at the done context before the driver's own checks;
		// run them too.
		u, err := parseURL(raw)
		if err == nil && sc != "memory" {
			_, err = parseRedis(u)
		}
		checkNoUserInfo(t, raw, err)
		// With a valid host and no '@' after it, the user-info is kept
		// whole. (Otherwise the URL is ambiguous, and the package doc says
		// to write such an '@' as %40.)
		if err != nil || !hostList(host) || strings.ContainsAny(user, ":%") || strings.Contains(pass, "%") || strings.Contains(tail, "@") {
			return
		}
		if got, _ := u.User.Password(); got != pass || u.User.Username() != user {
			t.Fatalf("parseURL(%q): user %q password %q, want %q %q", raw, u.User.Username(), got, user, pass)
		}
	})
}
