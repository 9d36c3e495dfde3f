package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Report is one run: what --json prints.
type Report struct {
	Machine  string    `json:"machine"`
	Command  string    `json:"command"`
	Started  string    `json:"started"`
	Finished string    `json:"finished"`
	Rounds   int       `json:"rounds"`
	Duration string    `json:"duration_per_run"`
	Keys     int       `json:"spread_keys"`
	Results  []*Result `json:"results"`
	Targets  []Target  `json:"targets"`
	Extras   *Extras   `json:"extras,omitempty"`
}

func fmtOps(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtNs(ns float64) string {
	switch {
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

func fmtRatio(r float64) string {
	if r == 0 || math.IsNaN(r) {
		return "—"
	}
	return fmt.Sprintf("%.2f×", r)
}

func fmtBytes(b float64) string {
	switch {
	case math.Abs(b) >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case math.Abs(b) >= 1<<10:
		return fmt.Sprintf("%.2f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

// printReport writes the tables in Markdown, ready for BENCHMARKS.md.
func printReport(w io.Writer, rep *Report, groups []Group) {
	fmt.Fprintf(w, "Machine: %s\nCommand: %s\nRounds: %d × %s per scenario and case; spread keyspace: %d keys\n\n",
		rep.Machine, rep.Command, rep.Rounds, rep.Duration, rep.Keys)
	printTargets(w, rep.Targets)
	for _, g := range groups {
		fmt.Fprintf(w, "### %s — %s\n\n", g.Name, g.Title)
		fmt.Fprintln(w, "| case | scenario | kind | ops/s | p50 | p99 | allocs/op | Redis cmds/op | × best peer | × floor |")
		fmt.Fprintln(w, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|")
		for _, r := range rep.Results {
			if r.Group != g.Name {
				continue
			}
			c := fmt.Sprintf("%dg %s", r.Goroutines, r.Keyspace)
			if r.SetupError != "" {
				fmt.Fprintf(w, "| %s | %s | %s | setup failed: %s | | | | | | |\n", c, r.Scenario, r.Kind, oneLine(r.SetupError))
				continue
			}
			name := r.Scenario
			if r.Kind == KindKarat {
				name = "**" + name + "**"
			}
			cmds := "?"
			if r.CommandsPerOp >= 0 {
				cmds = fmt.Sprintf("%.2f", r.CommandsPerOp)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %.1f | %s | %s | %s |\n", c, name, r.Kind,
				fmtOps(r.OpsPerSec), fmtNs(r.P50), fmtNs(r.P99), r.AllocsPerOp, cmds, fmtRatio(r.VsBestPeer), fmtRatio(r.VsFloor))
			if r.Errors > 0 {
				fmt.Fprintf(w, "| | ↳ %d errors (%d timeouts) of %d ops: %s | | | | | | | | |\n", r.Errors, r.Timeouts, r.Ops, oneLine(r.FirstError))
			}
		}
		fmt.Fprintln(w)
	}
	if rep.Extras != nil {
		rep.Extras.print(w)
	}
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

// plotRatios draws, at the largest goroutine count, each karat scenario's
// throughput as a ratio to the best peer's (or, in a group without peers,
// to the floor's), one bar per keyspace, on a log scale: a bar to the right
// of 1× is faster, to the left slower. Before karat's layers exist it draws
// the peers' ratio to the raw floor instead.
func plotRatios(rep *Report, file string) error {
	maxG := 0
	hasKarat := false
	for _, r := range rep.Results {
		maxG = max(maxG, r.Goroutines)
		hasKarat = hasKarat || (r.Kind == KindKarat && (r.VsBestPeer > 0 || r.VsFloor > 0))
	}
	type bar struct {
		label      string
		hot, other float64 // log10 of the ratio; 0 (1×) when not measured
	}
	var bars []*bar
	index := map[string]*bar{}
	for _, r := range rep.Results {
		if r.Goroutines != maxG || r.SetupError != "" {
			continue
		}
		v, label := r.VsFloor, r.Group+" / "+r.Scenario
		if hasKarat {
			if r.Kind != KindKarat {
				continue
			}
			if r.VsBestPeer > 0 {
				v = r.VsBestPeer
			} else {
				label += " (÷ floor)"
			}
		} else if r.Kind != KindPeer {
			continue
		}
		if v <= 0 {
			continue
		}
		b := index[label]
		if b == nil {
			b = &bar{label: label}
			index[label] = b
			bars = append(bars, b)
		}
		if r.Keyspace == Hot {
			b.hot = math.Log10(v)
		} else {
			b.other = math.Log10(v)
		}
	}
	if len(bars) == 0 {
		return fmt.Errorf("nothing to plot")
	}
	// Bars are drawn bottom-up: reverse so the first group is on top.
	for i, j := 0, len(bars)-1; i < j; i, j = i+1, j-1 {
		bars[i], bars[j] = bars[j], bars[i]
	}
	p := plot.New()
	if hasKarat {
		p.Title.Text = fmt.Sprintf("karat's throughput ÷ the best peer's, %d goroutines (log scale; right of 1× = faster)", maxG)
	} else {
		p.Title.Text = fmt.Sprintf("peer throughput ÷ raw client floor, %d goroutines (log scale)", maxG)
	}
	hot := make(plotter.Values, len(bars))
	other := make(plotter.Values, len(bars))
	labels := make([]string, len(bars))
	lo, hi := 0.0, 0.0
	for i, b := range bars {
		hot[i], other[i], labels[i] = b.hot, b.other, b.label
		lo, hi = min(lo, b.hot, b.other), max(hi, b.hot, b.other)
	}
	w := vg.Points(7)
	hb, err := plotter.NewBarChart(hot, w)
	if err != nil {
		return err
	}
	hb.Horizontal = true
	hb.Color = plotutil.Color(0)
	hb.Offset = w / 2
	ob, err := plotter.NewBarChart(other, w)
	if err != nil {
		return err
	}
	ob.Horizontal = true
	ob.Color = plotutil.Color(1)
	ob.Offset = -w / 2
	p.Add(plotter.NewGrid(), hb, ob)
	p.Legend.Add("hot key", hb)
	p.Legend.Add(fmt.Sprintf("%d keys (misses: unique keys)", rep.Keys), ob)
	p.Legend.Top = false // bottom right: slow bars point left
	p.NominalY(labels...)
	p.X.Min, p.X.Max = math.Floor(lo)-0.05, math.Ceil(hi)+0.05
	p.X.Tick.Marker = log10Ticks{}
	p.X.Label.Text = "ratio (log scale)"
	one, err := plotter.NewLine(plotter.XYs{{X: 0, Y: -0.5}, {X: 0, Y: float64(len(bars)) - 0.5}})
	if err == nil {
		one.Dashes = []vg.Length{vg.Points(3), vg.Points(3)}
		p.Add(one)
	}
	return p.Save(10*vg.Inch, vg.Length(1.2+0.3*float64(len(bars)))*vg.Inch, file)
}

// log10Ticks labels an axis that holds log10 of ratios with the ratios.
type log10Ticks struct{}

// Ticks puts a labelled tick at each power of ten and unlabelled ones at
// 2× and 5× between them.
func (log10Ticks) Ticks(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(lo); e <= math.Ceil(hi); e++ {
		ts = append(ts, plot.Tick{Value: e, Label: ratioLabel(math.Pow(10, e))})
		for _, m := range []float64{2, 5} {
			if v := e + math.Log10(m); v <= hi {
				ts = append(ts, plot.Tick{Value: v})
			}
		}
	}
	return ts
}

func ratioLabel(r float64) string {
	if r >= 1 {
		return fmt.Sprintf("%.0f×", r)
	}
	return strconv.FormatFloat(r, 'f', -1, 64) + "×"
}
