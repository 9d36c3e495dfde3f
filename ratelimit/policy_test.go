package ratelimit

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy("api 100/15m burst=20 fail=open")
	require.NoError(t, err)
	assert.Equal(t, Policy{Name: "api", Limit: 100, Window: 15 * time.Minute, Burst: 20, FailMode: FailOpen}, p)
	p, err = ParsePolicy("x 5/h algo=sliding fail=local share=0.25 failures-only")
	require.NoError(t, err)
	assert.Equal(t, Policy{Name: "x", Limit: 5, Window: time.Hour, Algorithm: SlidingWindow, FailMode: FailLocal, LocalShare: 0.25, ChargeFailuresOnly: true}, p)
	for _, bad := range []string{"", "api", "api 100", "api x/1m", "api 100/1parsec", "api 0/1m", "api 10/0s", "api 10/1us",
		"api 10/1m burst=x", "api 10/1m algo=leaky", "api 10/1m fail=maybe", "api 10/1m share=2", "api 10/1m share=x", "api 10/1m what",
		"a:b 10/1m", "api 10/1m algo=sliding burst=3", "api 10/1500us algo=sliding", "api 2000000/1us"} {
		_, err := ParsePolicy(bad)
		assert.ErrorIs(t, err, ErrInvalidPolicy, "%q", bad)
	}
	_, err = ParsePolicies("a 1/1s; a 2/1s")
	assert.ErrorIs(t, err, ErrInvalidPolicy)
}

func TestPresetsValid(t *testing.T) {
	for name, p := range Presets() {
		assert.NoError(t, p.Validate(), name)
		assert.Equal(t, name, p.Name)
	}
	assert.Equal(t, int64(100), API.Limit)
	assert.Equal(t, 15*time.Minute, API.Window)
	assert.True(t, Login.ChargeFailuresOnly)
}

func TestWithLimit(t *testing.T) {
	p := Policy{Name: "p", Limit: 100, Window: time.Minute, Burst: 20}.WithLimit(1000)
	assert.Equal(t, int64(1000), p.Limit)
	assert.Equal(t, int64(200), p.Burst)
	tiers := Tiers{Default: API, Plans: map[string]Policy{"pro": API.WithLimit(500)}}
	assert.Equal(t, int64(500), tiers.For("pro").Limit)
	assert.Equal(t, int64(100), tiers.For("").Limit)
}

func TestIntervalRoundsUp(t *testing.T) {
	p := Policy{Name: "p", Limit: 7, Window: 100 * time.Millisecond}
	assert.Equal(t, int64(14286), p.interval(), "never more than 7 per 100 ms")
}
