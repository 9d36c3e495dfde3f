package main

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestCheck runs `karat check` against memory and a real Redis through both
// drivers: every line is ✓, the exit status is 0, no key is left under its
// prefix, and a key outside it is untouched.
func TestCheck(t *testing.T) {
	bin := karatBinary(t)
	for _, tg := range targets(t) {
		t.Run(tg.name, func(t *testing.T) {
			var rc redis.UniversalClient
			ctx := context.Background()
			var before int64
			if tg.redis != "" {
				rc = tg.client()
				defer rc.Close()
				if err := rc.Set(ctx, "karat-check-bystander", "untouched", time.Minute).Err(); err != nil {
					t.Fatal(err)
				}
				defer rc.Del(ctx, "karat-check-bystander")
				before = dbSize(ctx, rc)
			}
			cmd := exec.Command(bin, "check", "--store", tg.url)
			cmd.Env = cleanEnv()
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("karat check: %v\n%s", err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			var checks int
			for _, l := range lines {
				switch {
				case strings.HasPrefix(l, "✓ "):
					checks++
					if !regexp.MustCompile(`\d+\.\d\d ms`).MatchString(l) {
						t.Errorf("a check line without its time: %q", l)
					}
				case strings.HasPrefix(l, "✗ "):
					t.Errorf("failed check: %s", l)
				}
			}
			if checks < 18 || lines[len(lines)-1] != "all checks passed" {
				t.Fatalf("%d checks passed:\n%s", checks, out)
			}
			m := regexp.MustCompile(`key prefix (\S+)`).FindStringSubmatch(string(out))
			if m == nil {
				t.Fatalf("no key prefix printed:\n%s", out)
			}
			if rc != nil {
				keys, err := scanAll(ctx, rc, m[1])
				if err != nil || len(keys) != 0 {
					t.Errorf("keys left under %s: %v (%v)", m[1], keys, err)
				}
				if v := rc.Get(ctx, "karat-check-bystander").Val(); v != "untouched" {
					t.Errorf("a key outside the prefix changed: %q", v)
				}
				if after := dbSize(ctx, rc); after != before {
					t.Errorf("DBSIZE %d before, %d after", before, after)
				}
			}
			t.Logf("%s: %d checks passed", tg.name, checks)
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		cmd := exec.Command(bin, "check", "--store", "redis://127.0.0.1:1")
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "✗ connect") {
			t.Fatalf("karat check on a closed port: %v\n%s", err, out)
		}
	})
}
