package conformance

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/karat-go/karat/store"
)

// hiddenStore offers the Store methods of a memory store and none of its
// optional capabilities.
type hiddenStore struct{ store.Store }

// liarHarness declares every capability for a store that has none.
type liarHarness struct{ *testMemoryHarness }

func (h liarHarness) MakeStore(context.Context) (store.Store, error) { return hiddenStore{h.s}, nil }
func (h liarHarness) Capabilities() []string {
	return []string{store.CapCachedReads, store.CapScan, store.CapStats}
}

const liarEnv = "KARAT_CONFORMANCE_LIAR_HARNESS"

// TestSuiteSurvivesMissingCapability (issue 5, item 4): a harness that
// declares capabilities its store lacks makes those cases fail with a clear
// message, without a panic, and the later cases still run. The suite runs
// in a subprocess (this test binary again), since its failures are the
// expected outcome.
func TestSuiteSurvivesMissingCapability(t *testing.T) {
	if os.Getenv(liarEnv) == "1" {
		RunStore(t, func(context.Context, *testing.T) (Harness, error) {
			return liarHarness{newTestMemoryHarness()}, nil
		})
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestSuiteSurvivesMissingCapability$", "-test.v", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), liarEnv+"=1")
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err == nil {
		t.Fatalf("the suite passed on a harness that declares capabilities its store lacks:\n%s", text)
	}
	if strings.Contains(text, "panic:") {
		t.Fatalf("the suite panicked:\n%s", text)
	}
	for _, c := range []string{"CachedReads", "CachedReadsSeeOtherWriters", "CachedReadsBoundedUnderPartition", "Scan", "Stats"} {
		if !regexp.MustCompile(`--- FAIL: TestSuiteSurvivesMissingCapability/` + c + ` `).MatchString(text) {
			t.Errorf("case %s did not fail", c)
		}
	}
	if !strings.Contains(text, "declares capability") {
		t.Errorf("no failure says which capability is missing:\n%s", text)
	}
	last := storeCases[len(storeCases)-1].name
	if !regexp.MustCompile(`--- (PASS|SKIP): TestSuiteSurvivesMissingCapability/` + last + ` `).MatchString(text) {
		t.Errorf("the last case (%s) did not run to its end:\n%s", last, text)
	}
}
