package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEWalkthrough runs the README's curl walkthrough verbatim against
// the server started as the README says (only the address differs: the
// test's server listens on a free port), and checks what each command's
// comment promises where it names a status or a Cache-Status.
func TestREADMEWalkthrough(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skipf("SKIPPED: no curl: %v", err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	sec := string(readme)
	i := strings.Index(sec, "## Running the server")
	if i < 0 {
		t.Fatal("README has no \"Running the server\" section")
	}
	sec = sec[i:]
	if j := strings.Index(sec[3:], "\n## "); j > 0 {
		sec = sec[:j+3]
	}
	if !strings.Contains(sec, "KARAT_DEMO_PASSWORD=tehran-demo go run ./cmd/karat serve\n") {
		t.Fatal("the walkthrough no longer starts the server with KARAT_DEMO_PASSWORD=tehran-demo")
	}
	var cmds []string
	for _, l := range strings.Split(sec, "\n") {
		if strings.HasPrefix(l, "curl ") {
			cmds = append(cmds, l)
		}
	}
	if len(cmds) < 10 {
		t.Fatalf("found %d curl commands in the walkthrough", len(cmds))
	}
	srv := startServer(t, []string{"KARAT_DEMO_PASSWORD=tehran-demo"})
	host := strings.TrimPrefix(srv.base, "http://")
	dir := t.TempDir()
	statusRe := regexp.MustCompile(`# → (\d{3})\b`)
	for _, c := range cmds {
		line := strings.ReplaceAll(c, "127.0.0.1:8080", host)
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", c, err, out)
		}
		if len(out) == 0 && !strings.Contains(c, "-si") {
			t.Errorf("%s: no output", c)
		}
		_, comment, _ := strings.Cut(c, "# → ")
		if m := statusRe.FindStringSubmatch(c); m != nil && strings.Contains(c, "-si") {
			if !strings.HasPrefix(string(out), "HTTP/1.1 "+m[1]) {
				t.Errorf("%s: want status %s, got %q", c, m[1], firstLine(out))
			}
		}
		if strings.Contains(comment, "karat; hit") && !strings.Contains(string(out), "Cache-Status: karat; hit") {
			t.Errorf("%s: no cache hit:\n%s", c, out)
		}
		if strings.Contains(comment, "fwd=miss") && !strings.Contains(string(out), "Cache-Status: karat; fwd=miss; stored") {
			t.Errorf("%s: no cache miss:\n%s", c, out)
		}
		if strings.Contains(comment, "fwd=miss again") && !strings.Contains(string(out), `"sales":26000`) {
			t.Errorf("%s: KPIs not refreshed after the invoice:\n%s", c, out)
		}
		if strings.Contains(comment, "علی احمدی") && !strings.Contains(string(out), "علی احمدی") {
			t.Errorf("%s: the name did not come back intact:\n%s", c, out)
		}
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}
