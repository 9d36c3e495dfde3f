package store_test

import (
	"strings"
	"testing"

	"github.com/karat-go/karat/store"
)

// The key-building hot path: every layer call builds one to three keys. Run
//
//	go test -run '^$' -bench . -benchmem ./store/
//
// Results are in BENCHMARKS.md.

var (
	sinkKey  string
	sinkSlot int
	sinkErr  error
)

func BenchmarkKey(b *testing.B) {
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkKey, sinkErr = store.Key("karat", "cache", "tenant-42", "product", "1234567")
		}
	})
	b.Run("hostile", func(b *testing.B) {
		hostile := "t*{x}\n\xff:" + strings.Repeat("é", 20)
		b.ReportAllocs()
		for b.Loop() {
			sinkKey, sinkErr = store.Key("karat", "cache", hostile, "product", "1234567")
		}
	})
	b.Run("tagged", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkKey, sinkErr = store.TaggedKey("user-42", "sess", "Zm9vYmFyYmF6cXV4")
		}
	})
}

func BenchmarkNamespace(b *testing.B) {
	ns := store.MustNamespace("karat", "session")
	b.Run("Key", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkKey, sinkErr = ns.Key("tenant-42", "product", "1234567")
		}
	})
	b.Run("TaggedKey", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkKey, sinkErr = ns.TaggedKey("user-42", "s", "Zm9vYmFyYmF6cXV4cXV1eA")
		}
	})
}

func BenchmarkSlot(b *testing.B) {
	k, _ := store.MustNamespace("karat", "session").TaggedKey("user-42", "s", "Zm9vYmFyYmF6cXV4cXV1eA")
	b.ReportAllocs()
	for b.Loop() {
		sinkSlot = store.Slot(k)
	}
}

func BenchmarkValidateKeys(b *testing.B) {
	ns := store.MustNamespace("karat", "session")
	k1, _ := ns.TaggedKey("user-42", "s", "Zm9vYmFyYmF6cXV4cXV1eA")
	k2, _ := ns.TaggedKey("user-42", "idx")
	keys := []string{k1, k2}
	b.ReportAllocs()
	for b.Loop() {
		sinkErr = store.ValidateKeys(keys)
	}
}
