package main

import (
	"debug/elf"
	"os"
	"strings"
	"testing"
)

// TestBinaryIsStatic: the binary the Dockerfile's build line makes has no
// program interpreter (no dynamic linking), as a distroless static image
// needs, and carries no local paths (-trimpath).
func TestBinaryIsStatic(t *testing.T) {
	bin := karatBinary(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Skipf("SKIPPED: not an ELF binary on this platform: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary has a program interpreter: it is dynamically linked")
		}
	}
	wd, _ := os.Getwd()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), wd) {
		t.Errorf("the binary holds the build directory %s: not built with -trimpath", wd)
	}
}

// TestDockerfileAndCompose checks the properties of the two files that no
// engine here can run: a non-root user, a HEALTHCHECK on /healthz through
// the binary, Redis with AOF on a named volume and a healthcheck, and karat
// waiting for it.
func TestDockerfileAndCompose(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"AS build", "CGO_ENABLED=0", "USER nonroot", `HEALTHCHECK`, `"/karat", "healthcheck"`, "static"} {
		if !strings.Contains(string(df), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	cf, err := os.ReadFile("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"--appendonly", "yes"`, "redis-data:/data", "healthcheck:", "condition: service_healthy", "KARAT_STORE_URL: redis://redis:6379/0", "volumes:\n  redis-data:"} {
		if !strings.Contains(string(cf), want) {
			t.Errorf("compose.yaml lacks %q", want)
		}
	}
}

// TestHealthcheckCommand: `karat healthcheck` exits 0 against a running
// server and 1 when nothing listens.
func TestHealthcheckCommand(t *testing.T) {
	srv := startServer(t, nil, "--demo-password", testPassword)
	bin := karatBinary(t)
	addr := strings.TrimPrefix(srv.base, "http://")
	if code := runCmd(t, bin, []string{"KARAT_ADDR=" + addr}, "healthcheck"); code != 0 {
		t.Errorf("healthcheck against a live server: exit %d", code)
	}
	if code := runCmd(t, bin, nil, "healthcheck", "--addr", "127.0.0.1:1"); code != 1 {
		t.Errorf("healthcheck with nothing listening: exit %d, want 1", code)
	}
}
