package sessionrec

import (
	"strings"
	"testing"
)

func sample() Record {
	return Record{ID: strings.Repeat("ab", 16), User: "u:{*}\n\xff", Tenant: "", Cur: strings.Repeat("c", 64),
		Prev: "", PrevUntil: 0, Version: 7, Created: 1_700_000_000_000, LastSeen: 1_700_000_100_000, Idle: 1_800_000,
		Abs: 1_700_028_800_000, Device: "laptop", UserAgent: "UA: 1", IP: "::1", Data: `{"a":"1:2"}`}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []Record{sample(), {}, {Version: -1, Created: -5, Data: strings.Repeat("x", 70000)}} {
		enc := r.Encode()
		got, ok := Decode(enc)
		if !ok || got != r {
			t.Fatalf("Decode(Encode(%+v)) = %+v, %v", r, got, ok)
		}
	}
	r := sample()
	if want := min(r.LastSeen+r.Idle, r.Abs); r.Deadline() != want {
		t.Errorf("Deadline %d, want %d", r.Deadline(), want)
	}
}

func TestDecodeRejects(t *testing.T) {
	r := sample()
	good := r.Encode()
	for _, bad := range []string{"", "x", "2:s1", "2:s2" + good[4:], good + "0:", good[:len(good)-1], "99999999999999999999999:x",
		strings.Replace(good, "1:7", "1:x", 1), "-1:" + good} {
		if _, ok := Decode(bad); ok {
			t.Errorf("Decode(%q) accepted", bad)
		}
	}
}

func TestPointerAndLive(t *testing.T) {
	p := Pointer{ID: strings.Repeat("1", 32), User: "a:b\n"}
	got, ok := DecodePointer(string(p.Append(nil)))
	if !ok || got != p {
		t.Fatalf("pointer round trip: %+v %v", got, ok)
	}
	dl, user, ok := SplitLive(LiveValue(123, "x:y"))
	if !ok || dl != 123 || user != "x:y" {
		t.Fatalf("SplitLive: %d %q %v", dl, user, ok)
	}
}

func FuzzDecode(f *testing.F) {
	r := sample()
	f.Add(r.Encode())
	f.Add("2:s1")
	f.Fuzz(func(t *testing.T, s string) {
		r, ok := Decode(s)
		if ok && r.Encode() != s {
			// Decode accepts only canonical encodings (numbers as FormatInt writes them).
			if _, ok2 := Decode(r.Encode()); !ok2 {
				t.Fatalf("re-encoding of an accepted record does not decode")
			}
		}
		_, _ = DecodePointer(s)
	})
}
