package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/karat-go/karat/drivers/memstore"
	"github.com/karat-go/karat/store"
)

// Extras are the measurements beside speed: correctness under concurrency
// and memory.
type Extras struct {
	Correctness []Correctness `json:"correctness"`
	RedisMemory []RedisMemory `json:"redis_memory"`
	MemHeap     *MemHeap      `json:"memory_driver_heap,omitempty"`
	LimiterRSS  []LimiterRSS  `json:"limiter_rss"`
	Notes       []string      `json:"notes,omitempty"`
}

// Correctness is one limiter's answer to 1,024 concurrent requests from 4
// processes against one key limited to 100.
type Correctness struct {
	Limiter    string `json:"limiter"`
	Kind       Kind   `json:"kind"`
	Requests   int    `json:"requests"`
	Limit      int    `json:"limit"`
	Admitted   int    `json:"admitted"`
	Denied     int    `json:"denied"`
	Errors     int    `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
}

// RedisMemory is the used_memory delta of writing N entries, per entry.
type RedisMemory struct {
	What     string  `json:"what"`
	Scenario string  `json:"scenario"`
	Kind     Kind    `json:"kind"`
	N        int     `json:"n"`
	PerEntry float64 `json:"bytes_per_entry"`
	Error    string  `json:"error,omitempty"`
}

// MemHeap is the memory driver's Go heap per key, beyond the key and value.
type MemHeap struct {
	N             int     `json:"n"`
	KeyBytes      int     `json:"key_bytes"`
	ValueBytes    int     `json:"value_bytes"`
	HeapPerKey    float64 `json:"heap_bytes_per_key"`
	OverheadBytes float64 `json:"overhead_bytes_per_key"`
}

// LimiterRSS is the resident memory a limiter holding N keys adds to a
// fresh process.
type LimiterRSS struct {
	Limiter   string  `json:"limiter"`
	Kind      Kind    `json:"kind"`
	N         int     `json:"n"`
	RSSBytes  int64   `json:"rss_delta_bytes"`
	HeapBytes int64   `json:"heap_delta_bytes"`
	PerKey    float64 `json:"rss_bytes_per_key"`
	Error     string  `json:"error,omitempty"`
}

const (
	correctProcs    = 4
	correctRequests = 1024
	correctLimit    = 100
)

func runExtras(env *Env, cfg *config) *Extras {
	x := &Extras{}
	p := newProgress(os.Stderr)
	for _, l := range limiters() {
		if !l.Redis || (cfg.only != nil && !cfg.only.MatchString("correctness/"+l.Name)) {
			continue
		}
		p.status("correctness: " + l.Name)
		delay := 2 * time.Second // every worker process is up and connected by then
		if cfg.quick {
			delay = 500 * time.Millisecond
		}
		x.Correctness = append(x.Correctness, correctness(env, l, delay))
	}
	n := 100_000
	if cfg.quick {
		n = 2_000
	}
	for _, g := range allGroups() {
		if g.Name != "session" && g.Name != "cache-hit" {
			continue
		}
		for _, s := range g.Scenarios {
			if s.Kind == KindFloor || strings.Contains(s.Name, "local") || strings.Contains(s.Name, "getcached") ||
				(cfg.only != nil && !cfg.only.MatchString("memory/"+s.Name)) {
				continue
			}
			if s.Kind == KindKarat && !strings.HasSuffix(s.Name, "-goredis") {
				continue // one karat driver is enough: the bytes are the same (go-redis: no client-side cache tracking)
			}
			p.status("redis memory: " + g.Name + "/" + s.Name)
			x.RedisMemory = append(x.RedisMemory, redisMemory(env, g.Name, s, n))
		}
	}
	p.status("memory driver heap")
	mh := MemHeap{}
	if err := runWorkerJSON(&mh, "memheap", strconv.Itoa(n)); err != nil {
		x.Notes = append(x.Notes, "memory driver heap: "+err.Error())
	} else {
		x.MemHeap = &mh
	}
	rssN := 1_000_000
	if cfg.quick {
		rssN = 20_000
	}
	for _, l := range limiters() {
		if l.Redis || (cfg.only != nil && !cfg.only.MatchString("rss/"+l.Name)) {
			continue
		}
		p.status("limiter RSS: " + l.Name)
		r := LimiterRSS{Limiter: l.Name, Kind: l.Kind, N: rssN}
		if err := runWorkerJSON(&r, "rss", l.Name, strconv.Itoa(rssN)); err != nil {
			r.Error = err.Error()
		}
		x.LimiterRSS = append(x.LimiterRSS, r)
	}
	p.status("")
	return x
}

// correctness starts 4 processes of this binary, each sending 256
// concurrent decisions on one fresh key at the same wall-clock moment, and
// sums what they saw.
func correctness(env *Env, l Limiter, delay time.Duration) Correctness {
	res := Correctness{Limiter: l.Name, Kind: l.Kind, Requests: correctRequests, Limit: correctLimit}
	key := "correct-" + l.Name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	start := time.Now().Add(delay).UnixNano()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range correctProcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var part Correctness
			err := runWorkerJSON(&part, "correct", l.Name, env.RedisAddr, strconv.Itoa(env.DB), env.Prefix, key,
				strconv.Itoa(correctRequests/correctProcs), strconv.FormatInt(start, 10))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.Errors += correctRequests / correctProcs
				if res.FirstError == "" {
					res.FirstError = err.Error()
				}
				return
			}
			res.Admitted += part.Admitted
			res.Denied += part.Denied
			res.Errors += part.Errors
			if res.FirstError == "" {
				res.FirstError = part.FirstError
			}
		}()
	}
	wg.Wait()
	return res
}

// redisMemory measures used_memory around the scenario's own set-up writing
// n entries under a fresh prefix, then deletes them.
func redisMemory(env *Env, group string, s Scenario, n int) RedisMemory {
	what := "session"
	if group == "cache-hit" {
		what = "cache entry"
	}
	r := RedisMemory{What: what, Scenario: s.Name, Kind: s.Kind, N: n}
	sub := *env
	sub.Keys = n
	sub.Prefix = env.Prefix + "-mem-" + s.Name
	before, err := usedMemory(env)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	inst, err := s.Setup(&sub)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	after, err := usedMemory(env)
	inst.Close()
	cleanupKeys(&sub)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.PerEntry = float64(after-before) / float64(n)
	return r
}

// runWorkerJSON re-runs this binary as a worker of role and decodes the JSON
// it prints into v.
func runWorkerJSON(v any, role string, args ...string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, append([]string{"--worker", role}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("worker %s: %w", role, err)
	}
	return json.Unmarshal(out, v)
}

// runWorker is the worker side of runWorkerJSON: it prints one JSON value.
func runWorker(role string, args []string) error {
	var v any
	var err error
	switch role {
	case "correct":
		v, err = workerCorrect(args)
	case "memheap":
		v, err = workerMemHeap(args)
	case "rss":
		v, err = workerRSS(args)
	default:
		err = fmt.Errorf("unknown worker role %q", role)
	}
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(v)
}

func findLimiter(name string) (Limiter, error) {
	for _, l := range limiters() {
		if l.Name == name {
			return l, nil
		}
	}
	return Limiter{}, fmt.Errorf("no limiter %q", name)
}

// workerCorrect: name addr db prefix key n startUnixNano.
func workerCorrect(args []string) (any, error) {
	if len(args) != 7 {
		return nil, fmt.Errorf("correct: want 7 arguments, got %d", len(args))
	}
	l, err := findLimiter(args[0])
	if err != nil {
		return nil, err
	}
	db, _ := strconv.Atoi(args[2])
	n, _ := strconv.Atoi(args[5])
	startNs, _ := strconv.ParseInt(args[6], 10, 64)
	env := &Env{RedisAddr: args[1], RedisURL: "redis://" + args[1] + "/" + args[2], DB: db, Prefix: args[3], Keys: 1}
	decide, closeFn, err := l.Open(env, correctLimit, time.Hour)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	// Warm up a connection on another key so the burst is not all dials.
	_, _ = decide(context.Background(), args[4]+"-warm")
	var res Correctness
	var mu sync.Mutex
	var ready, wg sync.WaitGroup
	gate := make(chan struct{})
	for range n {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-gate
			ok, err := decide(context.Background(), args[4])
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				res.Errors++
				if res.FirstError == "" {
					res.FirstError = err.Error()
				}
			case ok:
				res.Admitted++
			default:
				res.Denied++
			}
		}()
	}
	ready.Wait()
	time.Sleep(time.Until(time.Unix(0, startNs)))
	close(gate)
	wg.Wait()
	return res, nil
}

// workerMemHeap: n. Fills a memory store with n keys of a realistic shape and
// reports the Go heap they take, beyond their key and value bytes.
func workerMemHeap(args []string) (any, error) {
	n, err := strconv.Atoi(args[0])
	if err != nil {
		return nil, err
	}
	s := memstore.New(nil)
	ctx := context.Background()
	val := []byte("some value of about forty bytes, say....")
	m0 := heap()
	keyBytes := 0
	for i := range n {
		k, _ := store.TaggedKey("tenant-"+strconv.Itoa(i%100), "sess", strconv.Itoa(1_000_000+i))
		keyBytes += len(k)
		if err := s.Set(ctx, k, val, time.Hour); err != nil {
			return nil, err
		}
	}
	m1 := heap()
	runtime.KeepAlive(s)
	per := float64(m1-m0) / float64(n)
	return MemHeap{
		N: n, KeyBytes: keyBytes / n, ValueBytes: len(val), HeapPerKey: per,
		OverheadBytes: per - float64(keyBytes)/float64(n) - float64(len(val)),
	}, nil
}

func heap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// rss is the process's resident set size, from /proc (0 elsewhere).
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// workerRSS: name n. One decision on each of n keys, then the RSS and heap
// this added.
func workerRSS(args []string) (any, error) {
	l, err := findLimiter(args[0])
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return nil, err
	}
	debug.FreeOSMemory()
	r0, h0 := rss(), heap()
	decide, closeFn, err := l.Open(&Env{}, 100, time.Hour)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	for i := range n {
		if _, err := decide(ctx, "client-"+strconv.Itoa(i)); err != nil {
			return nil, err
		}
	}
	h1 := heap()
	debug.FreeOSMemory()
	r1 := rss()
	runtime.KeepAlive(decide)
	defer closeFn()
	return LimiterRSS{Limiter: l.Name, Kind: l.Kind, N: n, RSSBytes: r1 - r0, HeapBytes: h1 - h0, PerKey: float64(r1-r0) / float64(n)}, nil
}

func (x *Extras) print(w io.Writer) {
	fmt.Fprintln(w, "### Correctness beside speed: 1,024 concurrent requests from 4 processes, one key, limit 100")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| limiter | kind | admitted | denied | errors | first error |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|---|")
	for _, c := range x.Correctness {
		fmt.Fprintf(w, "| %s | %s | %d | %d | %d | %s |\n", c.Limiter, c.Kind, c.Admitted, c.Denied, c.Errors, oneLine(c.FirstError))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "### Memory beside speed: Redis used_memory per entry")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| what | scenario | kind | entries | bytes per entry |")
	fmt.Fprintln(w, "|---|---|---|--:|--:|")
	for _, m := range x.RedisMemory {
		v := fmt.Sprintf("%.0f", m.PerEntry)
		if m.Error != "" {
			v = "error: " + oneLine(m.Error)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %d | %s |\n", m.What, m.Scenario, m.Kind, m.N, v)
	}
	fmt.Fprintln(w)
	if m := x.MemHeap; m != nil {
		fmt.Fprintf(w, "Memory driver: %.0f bytes of Go heap per key over %d keys (key %d B, value %d B): %.0f bytes of overhead per key beyond key and value.\n\n",
			m.HeapPerKey, m.N, m.KeyBytes, m.ValueBytes, m.OverheadBytes)
	}
	fmt.Fprintln(w, "### Memory beside speed: in-memory limiters, process RSS added by N keys")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| limiter | kind | keys | RSS added | Go heap added | RSS per key |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|")
	for _, r := range x.LimiterRSS {
		if r.Error != "" {
			fmt.Fprintf(w, "| %s | %s | %d | error: %s | | |\n", r.Limiter, r.Kind, r.N, oneLine(r.Error))
			continue
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %.0f B |\n", r.Limiter, r.Kind, r.N, fmtBytes(float64(r.RSSBytes)), fmtBytes(float64(r.HeapBytes)), r.PerKey)
	}
	fmt.Fprintln(w)
	for _, n := range x.Notes {
		fmt.Fprintln(w, "Note:", n)
	}
}
