package ratelimit

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/karat-go/karat/drivers/memstore"
)

// TestFastPathEqualsDecide: the hot-path script and the general one (mode
// take, one GCRA key) give the same result and leave the same state, on
// random states and arguments.
func TestFastPathEqualsDecide(t *testing.T) {
	ctx := context.Background()
	clock := memstore.NewFakeClock(time.Date(2033, 3, 3, 3, 3, 3, 123456000, time.UTC))
	s := memstore.New(&memstore.Options{Clock: clock})
	defer s.Close()
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		now := clock.Now().UnixMicro()
		T := 1 + r.Int64N(1_000_000)
		burst := 1 + r.Int64N(20)
		cost := 1 + r.Int64N(25)
		var val string
		switch r.IntN(4) {
		case 0: // missing
		case 1:
			val = strconv.FormatInt(now+r.Int64N(burst*T*2+1), 10)
		case 2:
			val = strconv.FormatInt(now-r.Int64N(1_000_000), 10)
		case 3:
			val = "x" + strconv.Itoa(i)
		}
		k1, k2 := "{a}"+strconv.Itoa(i), "{b}"+strconv.Itoa(i)
		if val != "" {
			require.NoError(t, s.Set(ctx, k1, []byte(val), time.Hour))
			require.NoError(t, s.Set(ctx, k2, []byte(val), time.Hour))
		}
		a, b, c := strconv.FormatInt(T, 10), strconv.FormatInt(burst*T, 10), strconv.FormatInt(cost, 10)
		got, err := s.Eval(ctx, gcraTakeScript, []string{k1}, a, b, c)
		require.NoError(t, err)
		want, err := s.Eval(ctx, decideScript, []string{k2}, modeTake, algGCRA, a, b, c)
		require.NoError(t, err)
		require.True(t, got.Equal(want), "case %d: fast %s, decide %s", i, got, want)
		v1, e1 := s.Get(ctx, k1)
		v2, e2 := s.Get(ctx, k2)
		require.Equal(t, e1 == nil, e2 == nil)
		require.Equal(t, string(v2), string(v1))
		t1, _ := s.TTL(ctx, k1)
		t2, _ := s.TTL(ctx, k2)
		require.Equal(t, t2, t1)
		clock.Advance(time.Duration(r.Int64N(1000)) * time.Microsecond)
	}
}
