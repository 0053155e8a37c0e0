package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
)

// Result is what one scenario run against one target measured.
type Result struct {
	// Target is the broker's name as given; URL is where the clients connected.
	Target string `json:"target"`
	URL    string `json:"url,omitempty"`
	// Scenario is the scenario that ran.
	Scenario string `json:"scenario"`
	// Skipped says why the target did not run.
	Skipped string `json:"skipped,omitempty"`
	// Error is set when the run failed.
	Error string `json:"error,omitempty"`
	// Seconds is the length of the load phase.
	Seconds float64 `json:"seconds"`
	// CPUBusy and CPUSteal are the machine's CPU condition over the load phase, in percent of
	// all CPU time of all cores, from /proc/stat: CPUBusy is user, nice, system, irq and
	// softirq time (the tool's, the broker's and anything else running), CPUSteal the time the
	// hypervisor gave to other guests. Both are nil when not measured (not Linux, or
	// /proc/stat unreadable).
	CPUBusy  *float64 `json:"cpuBusy,omitempty"`
	CPUSteal *float64 `json:"cpuSteal,omitempty"`

	// Sent counts messages published, requests sent or connections attempted.
	Sent uint64 `json:"sent"`
	// Acked counts QoS 1 publishes acknowledged with success.
	Acked uint64 `json:"acked"`
	// Expected counts the deliveries that should have happened.
	Expected uint64 `json:"expected"`
	// Delivered counts distinct deliveries, answers or connections made.
	Delivered uint64 `json:"delivered"`
	// Lost is Expected minus Delivered; Duplicates counts messages received again.
	Lost       uint64 `json:"lost"`
	Duplicates uint64 `json:"duplicates"`
	// Gaps counts holes in the room ids a resuming subscriber saw (resume).
	Gaps uint64 `json:"gaps,omitempty"`
	// Resumes counts reconnections with since (resume).
	Resumes uint64 `json:"resumes,omitempty"`
	// Errors counts failed publishes, requests, connections and lost connections.
	Errors uint64 `json:"errors"`

	// Rate is the scenario's throughput, in RateUnit: deliveries/s (fanout, rooms, resume),
	// round trips/s (rpc) or connections/s (connections).
	Rate     float64 `json:"rate"`
	RateUnit string  `json:"rateUnit"`
	// SendRate is messages or requests sent per second.
	SendRate float64 `json:"sendRate"`
	// Latency is end-to-end delivery latency, RPC round trip or CONNECT-to-CONNACK time.
	Latency Latency `json:"latency"`

	// Connections and MemPerConn report the connections scenario: MemPerConn is the broker's
	// memory growth divided by Connections, measured as MemKind.
	Connections int     `json:"connections,omitempty"`
	MemPerConn  float64 `json:"memPerConnBytes,omitempty"`
	MemKind     string  `json:"memKind,omitempty"`

	// FirstErrors are the first few error messages; Notes explain the figures.
	FirstErrors []string `json:"firstErrors,omitempty"`
	Notes       []string `json:"notes,omitempty"`
}

// Report is the whole output of one invocation.
type Report struct {
	// Config is the invocation; Results has one entry per target, in order.
	Config  *Config  `json:"config"`
	Results []Result `json:"results"`
}

// errorLog counts errors and keeps the first few messages.
type errorLog struct {
	n     atomic.Uint64
	mu    sync.Mutex
	first []string
}

// maxErrorSamples is how many error messages a result keeps.
const maxErrorSamples = 5

// add records err.
func (e *errorLog) add(err error) {
	if err == nil {
		return
	}
	e.n.Add(1)
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.first) < maxErrorSamples {
		e.first = append(e.first, err.Error())
	}
}

// samples returns the first error messages.
func (e *errorLog) samples() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.first...)
}

// writeJSON prints the report as indented JSON.
func writeJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write JSON report: %w", err)
	}
	return nil
}

// ratio formats a/b, or "-" when it has no meaning.
func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

// human formats a count with k/M suffixes.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// percent formats a percentage measured, or "-" when it was not.
func percent(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *p)
}

// writeTable prints the report as a table, with ratios vs plain Mochi and, for roomq on Redis,
// vs roomq on the memory store.
func writeTable(w io.Writer, r Report) error {
	byName := map[string]*Result{}
	for i := range r.Results {
		byName[r.Results[i].Target] = &r.Results[i]
	}
	base := func(name string) float64 {
		if b, ok := byName[name]; ok && b.Skipped == "" && b.Error == "" {
			return b.Rate
		}
		return 0
	}
	mochi, memory := base(targetMochi), base(targetRoomqMemory)
	unit := ""
	if len(r.Results) > 0 {
		unit = r.Results[0].RateUnit
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "target\t%s\tvs mochi\tvs memory\tsent/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\tsent\tdelivered\tlost\tdups\terrors\tmem/conn\tbusy %%\tsteal %%\t\n", unit)
	var notes []string
	for _, res := range r.Results {
		if res.Skipped != "" || res.Error != "" {
			why := res.Skipped
			if why == "" {
				why = "error: " + res.Error
			}
			fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n", res.Target)
			notes = append(notes, fmt.Sprintf("%s: %s", res.Target, why))
			continue
		}
		vsMem := "-"
		if res.Target == targetRoomqRedis {
			vsMem = ratio(res.Rate, memory)
		}
		mem := "-"
		if res.MemPerConn > 0 {
			mem = fmt.Sprintf("%.1f KiB", res.MemPerConn/1024)
		}
		ms := func(us float64) string { return fmt.Sprintf("%.2f", us/1000) }
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t\n",
			res.Target, human(res.Rate), ratio(res.Rate, mochi), vsMem, human(res.SendRate),
			ms(res.Latency.P50), ms(res.Latency.P90), ms(res.Latency.P99), ms(res.Latency.Max),
			res.Sent, res.Delivered, res.Lost, res.Duplicates, res.Errors, mem,
			percent(res.CPUBusy), percent(res.CPUSteal))
		for _, n := range res.Notes {
			notes = append(notes, fmt.Sprintf("%s: %s", res.Target, n))
		}
		for _, e := range res.FirstErrors {
			notes = append(notes, fmt.Sprintf("%s: error: %s", res.Target, e))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	if len(notes) > 0 {
		if _, err := fmt.Fprintln(w, "\n"+strings.Join(notes, "\n")); err != nil {
			return fmt.Errorf("write table: %w", err)
		}
	}
	return nil
}
