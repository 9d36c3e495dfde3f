package memstore_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/store"
)

// TestNotIntegerHidesValue: IncrBy's ErrNotInteger does not quote the stored
// value, which may be a secret (a session token, say) and would reach logs.
func TestNotIntegerHidesValue(t *testing.T) {
	s := memstore.New(nil)
	defer s.Close()
	if err := s.Set(ctx, "secret", []byte("hunter2-token"), 0); err != nil {
		t.Fatal(err)
	}
	_, err := s.IncrBy(ctx, "secret", 1, 0)
	if !errors.Is(err, store.ErrNotInteger) {
		t.Fatalf("IncrBy on a string = %v, want ErrNotInteger", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error quotes the stored value: %v", err)
	}
	if _, err := s.IncrBy(ctx, "n", 8765432109876543210, 0); err != nil {
		t.Fatal(err)
	}
	_, err = s.IncrBy(ctx, "n", math.MaxInt64, 0)
	if !errors.Is(err, store.ErrNotInteger) {
		t.Fatalf("an overflowing IncrBy = %v, want ErrNotInteger", err)
	}
	if strings.Contains(err.Error(), "8765432109876543210") {
		t.Errorf("the error quotes the stored value: %v", err)
	}
}
