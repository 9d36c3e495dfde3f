package main

import (
	"fmt"
	"io"
)

// Extras are the measurements beside speed: correctness under concurrency
// and memory.
type Extras struct{}

func runExtras(env *Env, cfg *config) *Extras { return nil }

func (e *Extras) print(w io.Writer) {}

func runWorker(role string, args []string) error { return fmt.Errorf("unknown worker role %q", role) }
