package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// procStat is the Linux file the machine's CPU times are read from.
const procStat = "/proc/stat"

// stealWarnPercent is the CPU steal over a load phase, in percent, above which the tool warns
// that the hypervisor disturbed the results.
const stealWarnPercent = 10

// cpuTimes are the machine's cumulative CPU times over all cores, in clock ticks, as the
// aggregate "cpu" line of /proc/stat gives them. Guest time is left out: the kernel counts
// it in user and nice already.
type cpuTimes struct {
	user, nice, system, idle, iowait, irq, softirq, steal uint64
}

// busy is the time spent running code: user, nice, system, irq and softirq.
func (t cpuTimes) busy() uint64 {
	return t.user + t.nice + t.system + t.irq + t.softirq
}

// total is all the time accounted: busy, idle, iowait and steal.
func (t cpuTimes) total() uint64 {
	return t.busy() + t.idle + t.iowait + t.steal
}

// parseCPUTimes reads the aggregate "cpu" line of the text of /proc/stat. Fields that an old
// kernel does not have (iowait, irq, softirq, steal) count as zero.
func parseCPUTimes(stat []byte) (cpuTimes, error) {
	sc := bufio.NewScanner(bytes.NewReader(stat))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] != "cpu" {
			continue
		}
		fields = fields[1:]
		if len(fields) < 4 {
			return cpuTimes{}, fmt.Errorf("parse cpu line of %s: %d fields, want at least 4", procStat, len(fields))
		}
		var v [8]uint64
		for i := range min(len(fields), len(v)) {
			n, err := strconv.ParseUint(fields[i], 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("parse cpu line of %s: field %d: %w", procStat, i+1, err)
			}
			v[i] = n
		}
		return cpuTimes{user: v[0], nice: v[1], system: v[2], idle: v[3], iowait: v[4], irq: v[5], softirq: v[6], steal: v[7]}, nil
	}
	if err := sc.Err(); err != nil {
		return cpuTimes{}, fmt.Errorf("read %s: %w", procStat, err)
	}
	return cpuTimes{}, fmt.Errorf("no cpu line in %s", procStat)
}

// readCPUTimes reads the machine's CPU times from /proc/stat.
func readCPUTimes() (cpuTimes, error) {
	b, err := os.ReadFile(procStat)
	if err != nil {
		return cpuTimes{}, fmt.Errorf("read CPU times: %w", err)
	}
	return parseCPUTimes(b)
}

// cpuUsage is the machine's CPU condition between two samples of its CPU times, in percent
// of all CPU time of all cores.
type cpuUsage struct {
	// busy is the share of user, nice, system, irq and softirq time; steal is the share the
	// hypervisor gave to other guests while this machine had work to run.
	busy, steal float64
}

// errNoTicks is returned by usageBetween when no CPU time was accounted between the samples.
var errNoTicks = errors.New("no CPU time accounted between the samples")

// usageBetween computes the CPU condition from sample a to the later sample b.
func usageBetween(a, b cpuTimes) (cpuUsage, error) {
	if b.total() <= a.total() || b.busy() < a.busy() || b.steal < a.steal {
		return cpuUsage{}, errNoTicks
	}
	total := float64(b.total() - a.total())
	return cpuUsage{
		busy:  100 * float64(b.busy()-a.busy()) / total,
		steal: 100 * float64(b.steal-a.steal) / total,
	}, nil
}

// loadPhase times a scenario's load phase and samples the machine's CPU times at both of its
// ends, so that Result.Seconds and the CPU condition cover the same span. Every scenario
// starts one where its load starts and stops it where its load ends.
type loadPhase struct {
	// start is when the phase began; end when it ended (zero until stop).
	start, end time.Time
	// cpu0 are the CPU times at start; cpuErr says why they could not be read.
	cpu0   cpuTimes
	cpuErr error
	// usage is the CPU condition over the phase, once stopped and if measured.
	usage *cpuUsage
}

// startLoad begins a load phase now.
func startLoad() *loadPhase {
	p := &loadPhase{}
	p.cpu0, p.cpuErr = readCPUTimes()
	p.start = time.Now()
	return p
}

// stop ends the load phase now. Only the first call counts.
func (p *loadPhase) stop() {
	if !p.end.IsZero() {
		return
	}
	p.end = time.Now()
	if p.cpuErr != nil {
		return
	}
	cpu1, err := readCPUTimes()
	if err != nil {
		p.cpuErr = err
		return
	}
	u, err := usageBetween(p.cpu0, cpu1)
	if err != nil {
		p.cpuErr = err
		return
	}
	p.usage = &u
}

// result returns a Result with the stopped phase's Seconds, CPU condition (when measured)
// and rateUnit.
func (p *loadPhase) result(rateUnit string) Result {
	res := Result{Seconds: p.end.Sub(p.start).Seconds(), RateUnit: rateUnit}
	if p.usage != nil {
		busy, steal := p.usage.busy, p.usage.steal
		res.CPUBusy, res.CPUSteal = &busy, &steal
	}
	return res
}
