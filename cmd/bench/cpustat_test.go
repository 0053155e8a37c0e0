package main

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

// statBefore and statAfter are two samples of /proc/stat on a 2-core machine. Between them
// the aggregate line advanced by user 800, nice 100, system 250, idle 300, iowait 100,
// irq 20, softirq 30, steal 400 and guest 40 ticks: 2000 ticks in all (guest is part of user),
// 1200 of them busy, 400 stolen.
const (
	statBefore = `cpu  1000 50 300 8000 100 20 30 500 40 0
cpu0 500 25 150 4000 50 10 15 250 20 0
cpu1 500 25 150 4000 50 10 15 250 20 0
intr 123456 0 0
ctxt 987654
btime 1700000000
processes 4242
procs_running 3
procs_blocked 0
softirq 5555 0 1 2 3 4 5 6 7 8 9
`
	statAfter = `cpu1 900 75 275 4150 100 20 30 450 40 0
cpu  1800 150 550 8300 200 40 60 900 80 0
cpu0 900 75 275 4150 100 20 30 450 40 0
intr 223456 0 0
ctxt 1987654
`
)

// TestUsageBetween parses two fixed samples and checks the busy and steal percentages over
// the span between them, from the aggregate line wherever it is in the text.
func TestUsageBetween(t *testing.T) {
	a, err := parseCPUTimes([]byte(statBefore))
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseCPUTimes([]byte(statAfter))
	if err != nil {
		t.Fatal(err)
	}
	want := cpuTimes{user: 1000, nice: 50, system: 300, idle: 8000, iowait: 100, irq: 20, softirq: 30, steal: 500}
	if a != want {
		t.Errorf("parsed %+v, want %+v", a, want)
	}
	u, err := usageBetween(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(u.busy-60) > 1e-9 || math.Abs(u.steal-20) > 1e-9 {
		t.Errorf("busy %v%%, steal %v%%; want 60%%, 20%%", u.busy, u.steal)
	}
}

// TestUsageBetweenNoTicks checks that two samples with no time between them, or in the wrong
// order, measure nothing.
func TestUsageBetweenNoTicks(t *testing.T) {
	a, err := parseCPUTimes([]byte(statBefore))
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseCPUTimes([]byte(statAfter))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		a, b cpuTimes
	}{{"same sample", a, a}, {"reversed", b, a}} {
		if u, err := usageBetween(c.a, c.b); !errors.Is(err, errNoTicks) {
			t.Errorf("%s: got %+v, %v; want %v", c.name, u, err, errNoTicks)
		}
	}
}

// TestParseCPUTimesOldKernel checks that a cpu line without the later fields parses, with
// those fields zero.
func TestParseCPUTimesOldKernel(t *testing.T) {
	got, err := parseCPUTimes([]byte("cpu  10 20 30 40\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (cpuTimes{user: 10, nice: 20, system: 30, idle: 40}); got != want {
		t.Errorf("parsed %+v, want %+v", got, want)
	}
}

// TestParseCPUTimesErrors checks that texts without a usable aggregate cpu line fail.
func TestParseCPUTimesErrors(t *testing.T) {
	for _, text := range []string{
		"",
		"cpu0 1 2 3 4 5 6 7 8 0 0\n",
		"cpu  1 2 3\n",
		"cpu  1 2 x 4 5 6 7 8 0 0\n",
		"cpu  1 2 -3 4 5 6 7 8 0 0\n",
	} {
		if got, err := parseCPUTimes([]byte(text)); err == nil {
			t.Errorf("%q: parsed %+v, want an error", text, got)
		}
	}
}

// TestLoadPhaseResult checks that a load phase's result carries its length and, where
// /proc/stat can be read, busy and steal percentages between 0 and 100.
func TestLoadPhaseResult(t *testing.T) {
	p := startLoad()
	p.stop()
	res := p.result("deliveries/s")
	if res.Seconds < 0 || res.RateUnit != "deliveries/s" {
		t.Errorf("seconds %v, unit %q", res.Seconds, res.RateUnit)
	}
	if (res.CPUBusy == nil) != (res.CPUSteal == nil) {
		t.Fatalf("busy %v, steal %v: measured one without the other", res.CPUBusy, res.CPUSteal)
	}
	if res.CPUBusy == nil {
		return // unmeasured (no /proc/stat, or no tick between the samples)
	}
	for name, v := range map[string]float64{"busy": *res.CPUBusy, "steal": *res.CPUSteal} {
		if v < 0 || v > 100 {
			t.Errorf("%s %v%%, want within 0-100", name, v)
		}
	}
}

// TestWriteTableCPU checks the busy and steal columns of the table: the percentages when
// measured, "-" when not.
func TestWriteTableCPU(t *testing.T) {
	busy, steal := 87.34, 0.0
	rep := Report{Results: []Result{
		{Target: targetRoomqMemory, RateUnit: "deliveries/s", CPUBusy: &busy, CPUSteal: &steal},
		{Target: targetMochi, RateUnit: "deliveries/s"},
	}}
	var out bytes.Buffer
	if err := writeTable(&out, rep); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	header := strings.Fields(lines[0])
	if got := strings.Join(header[len(header)-4:], " "); got != "busy % steal %" {
		t.Errorf("header ends with %q, want busy %% steal %%:\n%s", got, out.String())
	}
	for i, want := range []string{"87.3 0.0", "- -"} {
		f := strings.Fields(lines[i+1])
		if got := strings.Join(f[len(f)-2:], " "); got != want {
			t.Errorf("row %d ends with %q, want %q:\n%s", i+1, got, want, out.String())
		}
	}
}
