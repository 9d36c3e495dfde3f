package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCRC16(t *testing.T) {
	// The check value of CRC-16/XMODEM, which the Redis Cluster spec quotes.
	if got := crc16("123456789"); got != 0x31C3 {
		t.Fatalf("crc16(123456789) = %#x, want 0x31c3", got)
	}
}

func TestSlotHashTags(t *testing.T) {
	// Cases from the Redis Cluster specification's hash tag rules.
	same := [][2]string{
		{"{user1000}.following", "{user1000}.followers"},
		{"foo{bar}{zap}", "bar"},
		{"foo{{bar}}zap", "{bar"},
	}
	for _, p := range same {
		if Slot(p[0]) != Slot(p[1]) {
			t.Errorf("Slot(%q) != Slot(%q)", p[0], p[1])
		}
	}
	whole := []string{"foo{}{bar}", "{}foo", "foo{bar"}
	for _, k := range whole {
		if Slot(k) != int(crc16(k)%SlotCount) {
			t.Errorf("Slot(%q) should hash the whole key", k)
		}
	}
	if got := Slot("foo"); got != 12182 {
		t.Errorf("Slot(foo) = %d, want 12182 (CLUSTER KEYSLOT foo)", got)
	}
}

func TestKeyEncoding(t *testing.T) {
	for _, c := range []struct {
		parts []string
		want  string
	}{
		{[]string{"karat", "sess"}, "karat:sess"},
		{[]string{"a:b"}, "a%3Ab"},
		{[]string{"a", "b"}, "a:b"},
		{[]string{"*", "{x}", "50%"}, "%2A:%7Bx%7D:50%25"},
		{[]string{"", ""}, ":"},
		{[]string{"é\n"}, "%C3%A9%0A"},
	} {
		got, err := Key(c.parts...)
		if err != nil || got != c.want {
			t.Errorf("Key(%q) = %q, %v; want %q", c.parts, got, err, c.want)
		}
	}
	got, err := TaggedKey("t{1}", "x")
	if err != nil || got != "{t%7B1%7D}:x" {
		t.Errorf("TaggedKey = %q, %v", got, err)
	}
	if _, err := Key(); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("Key() = %v, want ErrInvalidKey", err)
	}
	if _, err := Key(strings.Repeat("x", MaxPartLen+1)); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("oversized part: %v", err)
	}
	if _, err := Key(strings.Repeat("x", MaxPartLen)); err != nil {
		t.Errorf("part of MaxPartLen: %v", err)
	}
	if _, err := Key(strings.Repeat("*", MaxPartLen), strings.Repeat("*", MaxPartLen)); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("encoded key over MaxKeyLen: %v", err)
	}
}

func TestSplitKeyRejects(t *testing.T) {
	for _, k := range []string{"a%3ab", "a%3", "a%4", "a%41", "{x", "{x}y", "a b", "a*b", "%zz"} {
		if _, _, _, err := SplitKey(k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("SplitKey(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
}

func FuzzKeyRoundTrip(f *testing.F) {
	f.Add("tenant", "a:b", "*", true)
	f.Add("", "", "", false)
	f.Add("{x}", "\xff\x00", "%25", true)
	f.Fuzz(func(t *testing.T, tag, a, b string, tagged bool) {
		var k string
		var err error
		if tagged {
			k, err = TaggedKey(tag, a, b)
		} else {
			k, err = Key(tag, a, b)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("error not ErrInvalidKey: %v", err)
			}
			return
		}
		body := k
		if tagged {
			body = k[strings.IndexByte(k, '}')+1:]
			if Slot(k) != Slot(k[:strings.IndexByte(k, '}')+1]+":other") {
				t.Fatalf("tagged key %q is not in its tag's slot", k)
			}
		}
		if strings.ContainsAny(body, "*?[]\\{} \n") {
			t.Fatalf("key %q holds a glob, tag or blank character", k)
		}
		gotTagged, gotTag, parts, err := SplitKey(k)
		if err != nil {
			t.Fatalf("SplitKey(%q): %v", k, err)
		}
		want := []string{tag, a, b}
		if tagged {
			want = []string{a, b}
			if gotTag != tag {
				t.Fatalf("tag %q came back as %q", tag, gotTag)
			}
		}
		if gotTagged != tagged || strings.Join(parts, "\x00|") != strings.Join(want, "\x00|") || len(parts) != len(want) {
			t.Fatalf("round trip of %q gave %v %q", want, gotTagged, parts)
		}
	})
}

func TestValidateKeys(t *testing.T) {
	a, _ := TaggedKey("u1", "a")
	b, _ := TaggedKey("u1", "b")
	if err := ValidateKeys([]string{a, b}); err != nil {
		t.Fatal(err)
	}
	c, _ := Key("other")
	if Slot(c) == Slot(a) {
		t.Skip("unlucky fixture: same slot")
	}
	if err := ValidateKeys([]string{a, c}); !errors.Is(err, ErrCrossSlot) {
		t.Fatalf("want ErrCrossSlot, got %v", err)
	}
	if err := ValidateKeys([]string{""}); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("want ErrInvalidKey, got %v", err)
	}
}

func TestTTLMillis(t *testing.T) {
	for in, want := range map[int64]int64{0: 0, -5: 0, 1: 1, 999_999: 1, 1_000_000: 1, 1_000_001: 2, 1_500_000_000: 1500} {
		if got := TTLMillis(time.Duration(in)); got != want {
			t.Errorf("TTLMillis(%dns) = %d, want %d", in, got, want)
		}
	}
}
