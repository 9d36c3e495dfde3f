package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// config is the command line.
type config struct {
	redisURL   string
	jsonOut    bool
	jsonFile   string
	quick      bool
	plotFile   string
	rounds     int
	duration   time.Duration
	keys       int
	only       *regexp.Regexp
	goroutines []int
	extras     bool
	worker     string
	cpuProfile string
	args       []string // what follows the flags (worker arguments)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	cfg := &config{}
	fs.StringVar(&cfg.redisURL, "redis", "", "use this Redis (redis://host:port[/db]) instead of starting a redis-server; keys go under a random prefix and are deleted at the end")
	fs.BoolVar(&cfg.jsonOut, "json", false, "print the results as JSON on stdout instead of tables")
	fs.StringVar(&cfg.jsonFile, "json-file", "", "also write the results as JSON to this file")
	fs.BoolVar(&cfg.quick, "quick", false, "a short smoke run (1 round, 20ms per run, 1,000 keys, small extras); asserts nothing about speed")
	fs.StringVar(&cfg.plotFile, "plot", "", "draw the ratios as a bar chart into this SVG file")
	fs.IntVar(&cfg.rounds, "rounds", 3, "rounds; each round runs every scenario once per case, in a rotated order")
	fs.DurationVar(&cfg.duration, "duration", time.Second, "length of one timed run")
	fs.IntVar(&cfg.keys, "keys", 100_000, "keys in the spread keyspace")
	only := fs.String("only", "", "run only groups or scenarios whose \"group/scenario\" matches this regexp")
	gs := fs.String("goroutines", "1,64", "comma-separated goroutine counts")
	fs.BoolVar(&cfg.extras, "extras", true, "also measure correctness (admitted of 1,024 against a limit of 100) and memory")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the timed runs to this file (go tool pprof)")
	fs.StringVar(&cfg.worker, "worker", "", "internal: run as a worker process of this role")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	cfg.args = fs.Args()
	if cfg.worker != "" {
		return cfg, nil
	}
	if cfg.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["rounds"] {
			cfg.rounds = 1
		}
		if !set["duration"] {
			cfg.duration = 20 * time.Millisecond
		}
		if !set["keys"] {
			cfg.keys = 1000
		}
	}
	if *only != "" {
		re, err := regexp.Compile(*only)
		if err != nil {
			return nil, fmt.Errorf("--only: %w", err)
		}
		cfg.only = re
	}
	for _, f := range strings.Split(*gs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--goroutines: bad count %q", f)
		}
		cfg.goroutines = append(cfg.goroutines, n)
	}
	if cfg.rounds < 1 || cfg.duration <= 0 || cfg.keys < 1 {
		return nil, errors.New("--rounds, --duration and --keys must be positive")
	}
	return cfg, nil
}

func run() error {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if cfg.worker != "" {
		return runWorker(cfg.worker, cfg.args)
	}

	env := &Env{Keys: cfg.keys, Prefix: "karat-bench-" + strconv.FormatUint(rand.Uint64()>>16, 36)}
	var srv *redisServer
	if cfg.redisURL == "" {
		if srv, err = startRedis(); err != nil {
			return err
		}
		defer srv.stop()
		env.RedisAddr = srv.addr
		env.RedisURL = "redis://" + srv.addr
	} else {
		u, err := url.Parse(cfg.redisURL)
		if err != nil || u.Scheme != "redis" || u.Host == "" {
			return fmt.Errorf("--redis: want redis://host:port[/db], got %q", cfg.redisURL)
		}
		env.RedisAddr = u.Host
		env.RedisURL = cfg.redisURL
		if p := strings.Trim(u.Path, "/"); p != "" {
			if env.DB, err = strconv.Atoi(p); err != nil {
				return fmt.Errorf("--redis: bad database %q", p)
			}
		}
	}
	// An interrupt still stops the server and deletes the keys.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "\nbench: interrupted")
		if cfg.redisURL != "" {
			cleanupKeys(env)
		}
		if srv != nil {
			srv.stop()
		}
		os.Exit(130)
	}()
	defer func() {
		if cfg.redisURL != "" {
			cleanupKeys(env)
		}
	}()

	rep := &Report{
		Machine: machine(env),
		Command: "go run . " + strings.Join(os.Args[1:], " "),
		Started: time.Now().UTC().Format(time.RFC3339),
		Rounds:  cfg.rounds, Duration: cfg.duration.String(), Keys: cfg.keys,
	}
	groups := selectGroups(allGroups(), cfg.only)
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rep.Results, err = measure(env, cfg, groups)
	if err != nil {
		return err
	}
	if cfg.extras {
		rep.Extras = runExtras(env, cfg)
	}
	rep.Finished = time.Now().UTC().Format(time.RFC3339)
	rep.Targets = append(checkTargets(rep.Results), checkMemoryTargets(rep.Extras)...)
	if cfg.plotFile != "" {
		if err := plotRatios(rep, cfg.plotFile); err != nil {
			return fmt.Errorf("--plot: %w", err)
		}
	}
	if cfg.jsonFile != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.jsonFile, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("--json-file: %w", err)
		}
	}
	if cfg.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
		return failures(rep)
	}
	printReport(os.Stdout, rep, groups)
	return failures(rep)
}

// failures is what makes the command exit non-zero, so that --quick in CI
// catches a harness that rotted: a scenario that could not be set up, a
// karat scenario with errors, karat admitting other than exactly the limit.
// A peer's errors are its own behaviour and only reported.
func failures(rep *Report) error {
	var bad []string
	for _, r := range rep.Results {
		if r.SetupError != "" {
			bad = append(bad, fmt.Sprintf("%s/%s: setup: %s", r.Group, r.Scenario, r.SetupError))
		} else if r.Kind == KindKarat && r.Errors > r.Timeouts {
			bad = append(bad, fmt.Sprintf("%s/%s (%dg %s): %d errors: %s", r.Group, r.Scenario, r.Goroutines, r.Keyspace, r.Errors, r.FirstError))
		}
	}
	if rep.Extras != nil {
		for _, c := range rep.Extras.Correctness {
			// Admitting more than the limit is wrong at any speed; fewer,
			// with errors, is what timeouts on a loaded machine do, and is
			// reported, not judged.
			if c.Kind == KindKarat && c.Admitted > c.Limit {
				bad = append(bad, fmt.Sprintf("correctness/%s: admitted %d of limit %d", c.Limiter, c.Admitted, c.Limit))
			}
		}
		for _, m := range rep.Extras.RedisMemory {
			if m.Error != "" {
				bad = append(bad, fmt.Sprintf("memory/%s: %s", m.Scenario, m.Error))
			}
		}
		for _, r := range rep.Extras.LimiterRSS {
			if r.Error != "" {
				bad = append(bad, fmt.Sprintf("rss/%s: %s", r.Limiter, r.Error))
			}
		}
		bad = append(bad, rep.Extras.Notes...)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%d failures:\n  %s", len(bad), strings.Join(bad, "\n  "))
	}
	return nil
}

// selectGroups keeps the scenarios whose "group/scenario" matches re.
func selectGroups(gs []Group, re *regexp.Regexp) []Group {
	if re == nil {
		return gs
	}
	var out []Group
	for _, g := range gs {
		var sc []Scenario
		for _, s := range g.Scenarios {
			if re.MatchString(g.Name + "/" + s.Name) {
				sc = append(sc, s)
			}
		}
		if len(sc) > 0 {
			g.Scenarios = sc
			out = append(out, g)
		}
	}
	return out
}

func machine(env *Env) string {
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(l[strings.IndexByte(l, ':')+1:])
				break
			}
		}
	}
	return fmt.Sprintf("%d CPU %s, %s %s/%s, %s", runtime.NumCPU(), model, runtime.Version(), runtime.GOOS, runtime.GOARCH, redisVersion(env))
}

// measure takes the groups one at a time: it sets up the group's
// scenarios (writing their keys through each library, then reading each key
// once), runs the rounds (in each round every case, every scenario once, in
// an order rotated by the round, so that no scenario always runs first or
// last), and closes them before the next group. One group's keys at a time
// keep the live heap, and so every scenario's garbage collection cost,
// small and alike.
func measure(env *Env, cfg *config, groups []Group) ([]*Result, error) {
	p := newProgress(os.Stderr)
	total := 0
	for _, g := range groups {
		total += len(g.Scenarios) * len(cfg.goroutines) * len(g.Keyspaces) * cfg.rounds
	}
	infoClient := newGoRedis(env)
	defer infoClient.Close()
	p.start(total, cfg.duration)
	var out []*Result
	for gi := range groups {
		out = append(out, measureGroup(env, cfg, &groups[gi], p, infoClient)...)
	}
	p.done()
	return out, nil
}

func measureGroup(env *Env, cfg *config, g *Group, p *progress, infoClient *redis.Client) []*Result {
	type slot struct {
		s    *Scenario
		inst *Instance
		res  map[Case]*Result
	}
	var slots []*slot
	for si := range g.Scenarios {
		s := &g.Scenarios[si]
		p.status(fmt.Sprintf("setting up %s/%s", g.Name, s.Name))
		sl := &slot{s: s, res: map[Case]*Result{}}
		inst, err := s.Setup(env)
		if err != nil {
			fmt.Fprintf(os.Stderr, "\nbench: %s/%s: setup: %v\n", g.Name, s.Name, err)
			p.skip(len(cfg.goroutines) * len(g.Keyspaces) * cfg.rounds)
		} else {
			sl.inst = inst
			n := 1
			if slices.Contains(g.Keyspaces, Spread) {
				n = env.Keys
			}
			if !slices.Contains(g.Keyspaces, Unique) {
				if err := warm(inst, n); err != nil {
					fmt.Fprintf(os.Stderr, "\nbench: %s/%s: warm-up: %v\n", g.Name, s.Name, err)
				}
			}
		}
		for _, n := range cfg.goroutines {
			for _, ks := range g.Keyspaces {
				r := &Result{Group: g.Name, Scenario: s.Name, Kind: s.Kind, Goroutines: n, Keyspace: ks, hist: &histogram{}}
				if err != nil {
					r.SetupError = err.Error()
				}
				sl.res[Case{n, ks}] = r
			}
		}
		slots = append(slots, sl)
	}
	defer func() {
		for _, sl := range slots {
			if sl.inst != nil && sl.inst.Close != nil {
				sl.inst.Close()
			}
		}
		runtime.GC()
	}()
	// An untimed run at each goroutine count first, so that connection
	// pools and keep-alive connections (HTTP) have grown to what the timed
	// runs need.
	for _, n := range cfg.goroutines {
		for _, sl := range slots {
			if sl.inst != nil {
				p.status(fmt.Sprintf("warming %s/%s at %d goroutines", g.Name, sl.s.Name, n))
				runOnce(sl.inst, Case{n, g.Keyspaces[0]}, env.Keys, min(cfg.duration/4, 100*time.Millisecond))
			}
		}
	}
	for round := range cfg.rounds {
		// One collection per round, not per run (allocations are counted
		// with Mallocs, not inferred from the heap).
		runtime.GC()
		for _, n := range cfg.goroutines {
			for _, ks := range g.Keyspaces {
				c := Case{n, ks}
				for i := range slots {
					sl := slots[(i+round)%len(slots)]
					if sl.inst == nil {
						continue
					}
					r := sl.res[c]
					p.step(fmt.Sprintf("round %d/%d  %s/%s  %s", round+1, cfg.rounds, g.Name, sl.s.Name, c))
					cmds0 := commandsProcessed(infoClient)
					smp := runOnce(sl.inst, c, env.Keys, cfg.duration)
					if cmds1 := commandsProcessed(infoClient); cmds0 >= 0 && cmds1 >= 0 {
						r.commands += uint64(cmds1 - cmds0 - 1) // less the INFO itself
					} else {
						r.commands = math.MaxUint64
					}
					r.RoundsOps = append(r.RoundsOps, float64(smp.ops)/smp.elapsed.Seconds())
					r.Ops += smp.ops
					r.Errors += smp.errs
					r.Timeouts += smp.timeouts
					r.mallocs += smp.mallocs
					r.hist.merge(smp.hist)
					if r.FirstError == "" && smp.firstErr != nil {
						r.FirstError = smp.firstErr.Error()
					}
				}
			}
		}
	}
	var out []*Result
	for _, n := range cfg.goroutines {
		for _, ks := range g.Keyspaces {
			var rs []*Result
			for _, sl := range slots {
				r := sl.res[Case{n, ks}]
				r.OpsPerSec = median(r.RoundsOps)
				r.P50 = r.hist.quantile(0.50)
				r.P99 = r.hist.quantile(0.99)
				if r.Ops > 0 {
					r.AllocsPerOp = float64(r.mallocs) / float64(r.Ops)
					r.CommandsPerOp = -1
					if r.commands != math.MaxUint64 {
						r.CommandsPerOp = float64(r.commands) / float64(r.Ops)
					}
				}
				rs = append(rs, r)
			}
			ratios(rs)
			out = append(out, rs...)
		}
	}
	return out
}

// progress prints one updating line on a terminal, or a line every 10% when
// stderr is a file or a pipe (CI logs).
type progress struct {
	f        *os.File
	tty      bool
	total, n int
	per      time.Duration
	t0       time.Time
	lastPct  int
}

func newProgress(f *os.File) *progress {
	fi, err := f.Stat()
	return &progress{f: f, tty: err == nil && fi.Mode()&os.ModeCharDevice != 0, lastPct: -1}
}

func (p *progress) status(s string) {
	if p.tty {
		fmt.Fprintf(p.f, "\r\033[K%s", s)
	}
}

func (p *progress) start(total int, per time.Duration) {
	p.total, p.per, p.t0 = total, per, time.Now()
	if !p.tty {
		fmt.Fprintf(p.f, "bench: %d timed runs of %v\n", total, per)
	}
}

// skip counts n runs that will not happen (a scenario failed to set up).
func (p *progress) skip(n int) { p.total -= n }

func (p *progress) step(what string) {
	p.n++
	pct := 100 * p.n / max(p.total, 1)
	eta := time.Duration(p.total-p.n+1) * p.per
	if el := time.Since(p.t0); p.n > 1 {
		eta = el / time.Duration(p.n-1) * time.Duration(p.total-p.n+1)
	}
	if p.tty {
		const width = 24
		bar := strings.Repeat("#", width*p.n/max(p.total, 1)) + strings.Repeat(".", width-width*p.n/max(p.total, 1))
		fmt.Fprintf(p.f, "\r\033[K[%s] %3d%% %d/%d  eta %v  %s", bar, pct, p.n, p.total, eta.Round(time.Second), what)
	} else if pct/10 != p.lastPct/10 {
		fmt.Fprintf(p.f, "bench: %3d%% (%d/%d) eta %v  %s\n", pct, p.n, p.total, eta.Round(time.Second), what)
	}
	p.lastPct = pct
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprintf(p.f, "\r\033[Kbench: %d runs in %v\n", p.total, time.Since(p.t0).Round(time.Second))
	} else {
		fmt.Fprintf(p.f, "bench: %d runs in %v\n", p.total, time.Since(p.t0).Round(time.Second))
	}
}

// warm runs one operation on each of the first n keys, from 32 goroutines,
// so that connections are dialled, scripts loaded and client-side caches
// (rueidis's, go-redis/cache's TinyLFU) hold what a steady state would:
// every scenario starts warm, none pays its first misses in a timed run.
func warm(inst *Instance, n int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range min(32, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			op := inst.NewOp()
			ctx := context.Background()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := op(ctx, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}
