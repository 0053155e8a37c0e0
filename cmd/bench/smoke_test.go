package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/roomq/roomq/client"
)

// runJSON runs the tool with args plus -json -quiet and decodes its report.
func runJSON(t *testing.T, args ...string) Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, append(args, "-json", "-quiet"), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("bench %v exited with %d\nstderr:\n%s\nstdout:\n%s", args, code, stderr.String(), stdout.String())
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, stdout.String())
	}
	return rep
}

// TestMain runs the test binary as a broker child when the tests start one (the binary is
// then the executable that startChild runs again), and the tests otherwise.
func TestMain(m *testing.M) {
	childMain()
	os.Exit(m.Run())
}

// TestSmoke runs a short QoS 1 fan-out against roomq (memory store) and plain Mochi, each in
// a child process (the default), and checks that every message was delivered. It makes no
// timing assertion.
func TestSmoke(t *testing.T) {
	before := runtime.NumGoroutine()
	defer checkGoroutines(t, before)
	defer checkNoChildren(t)
	rep := runJSON(t, "compare", "fanout", "-targets", "roomq-memory,mochi",
		"-publishers", "2", "-subscribers", "5", "-qos", "1", "-rate", "200", "-duration", "2s")
	if !rep.Config.Isolate {
		t.Error("the brokers did not run in child processes")
	}
	checkFanout(t, rep, 5)
}

// TestSmokeInProcess is TestSmoke with the brokers in the tool's process (-isolate=false).
func TestSmokeInProcess(t *testing.T) {
	before := runtime.NumGoroutine()
	defer checkGoroutines(t, before)
	rep := runJSON(t, "compare", "fanout", "-targets", "roomq-memory,mochi", "-isolate=false",
		"-publishers", "2", "-subscribers", "5", "-qos", "1", "-rate", "200", "-duration", "1s")
	checkFanout(t, rep, 5)
}

// checkFanout checks the fan-out results of rep against roomq-memory and mochi with
// subscribers subscribers: no error, loss, duplicate or missing latency sample, and the CPU
// condition measured where /proc/stat can be read.
func checkFanout(t *testing.T, rep Report, subscribers uint64) {
	t.Helper()
	if len(rep.Results) != 2 {
		t.Fatalf("got %d results, want 2", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Error != "" || r.Skipped != "" {
			t.Fatalf("%s: error %q, skipped %q", r.Target, r.Error, r.Skipped)
		}
		if r.Delivered == 0 || r.Sent == 0 {
			t.Errorf("%s: sent %d, delivered %d", r.Target, r.Sent, r.Delivered)
		}
		if r.Lost != 0 || r.Duplicates != 0 || r.Errors != 0 {
			t.Errorf("%s: lost %d, duplicates %d, errors %d (%v)", r.Target, r.Lost, r.Duplicates, r.Errors, r.FirstErrors)
		}
		if r.Expected != r.Acked*subscribers {
			t.Errorf("%s: expected %d deliveries for %d acknowledged messages and %d subscribers", r.Target, r.Expected, r.Acked, subscribers)
		}
		if r.Latency.Count != r.Delivered {
			t.Errorf("%s: %d latency samples for %d deliveries", r.Target, r.Latency.Count, r.Delivered)
		}
		if _, err := readCPUTimes(); err == nil && (r.CPUBusy == nil || r.CPUSteal == nil) {
			t.Errorf("%s: busy %v, steal %v: CPU not measured though %s is readable", r.Target, r.CPUBusy, r.CPUSteal, procStat)
		}
	}
}

// TestConnectionsMemory opens connections to roomq in a child process and checks that the
// report has its memory per connection, as the child's resident set.
func TestConnectionsMemory(t *testing.T) {
	before := runtime.NumGoroutine()
	defer checkGoroutines(t, before)
	defer checkNoChildren(t)
	rep := runJSON(t, "connections", "-target", "roomq-memory", "-conns", "300", "-conn-rate", "1000", "-duration", "5s")
	r := rep.Results[0]
	if r.Error != "" || r.Delivered != 300 {
		t.Fatalf("%+v", r)
	}
	if r.MemPerConn <= 0 || r.MemKind != childMemoryKind {
		t.Errorf("memory per connection %.0f bytes, measured as %q; want > 0, as %q", r.MemPerConn, r.MemKind, childMemoryKind)
	}
}

// checkNoChildren fails the test if a child process of the test is still there: every
// broker child and redis-server was stopped and waited for. It checks nothing without /proc.
func checkNoChildren(t *testing.T) {
	t.Helper()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the process ended meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) >= 2 && f[1] == strconv.Itoa(os.Getpid()) {
			t.Errorf("child process left: %s", strings.TrimSpace(s[:strings.LastIndexByte(s, ')')+1]))
		}
	}
}

// checkGoroutines fails the test unless the goroutines return to about before within a few
// seconds: every run joins what it started.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left running, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestScenariosSmoke runs every other scenario briefly against roomq on the memory store.
func TestScenariosSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	cases := []struct {
		name string
		args []string
		min  uint64
	}{
		{"fanout-raw", []string{"fanout", "-subscriber", "raw", "-subscribers", "3", "-qos", "1", "-rate", "100", "-duration", "1s"}, 1},
		{"rooms", []string{"rooms", "-rooms", "3", "-members", "3", "-qos", "1", "-rate", "100", "-duration", "1s"}, 1},
		{"rpc", []string{"rpc", "-clients", "2", "-history", "20", "-duration", "1s"}, 1},
		{"connections", []string{"connections", "-conns", "50", "-conn-rate", "500", "-duration", "2s"}, 50},
		{"resume", []string{"resume", "-subscribers", "3", "-rate", "200", "-qos", "1", "-resume-every", "300ms", "-duration", "1500ms"}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			defer checkGoroutines(t, before)
			defer checkNoChildren(t)
			rep := runJSON(t, tc.args...)
			r := rep.Results[0]
			if r.Error != "" || r.Delivered < tc.min || r.Lost != 0 || r.Duplicates != 0 || r.Gaps != 0 || r.Errors != 0 {
				t.Errorf("%+v", r)
			}
		})
	}
}

// TestTable checks the human table: ratios against Mochi and notes for skipped targets.
func TestTable(t *testing.T) {
	var buf bytes.Buffer
	err := writeTable(&buf, Report{Results: []Result{
		{Target: targetRoomqMemory, Rate: 50, RateUnit: "deliveries/s"},
		{Target: targetRoomqRedis, Rate: 25},
		{Target: targetMochi, Rate: 100},
		{Target: targetMosquitto, Skipped: "skipped: not installed"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0.50x", "0.25x", "1.00x", "mosquitto: skipped: not installed"} {
		if !bytes.Contains(buf.Bytes(), []byte(want)) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

// TestHistogram checks quantiles within the histogram's precision.
func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}} {
		got := h.quantile(tc.q)
		if d := got - tc.want; d < -tc.want/15 || d > tc.want/15 {
			t.Errorf("quantile(%v) = %v, want about %v", tc.q, got, tc.want)
		}
	}
	if s := h.summary(); s.Max != 1000 || s.Count != 1000 {
		t.Errorf("summary %+v", s)
	}
}

// TestCreateRooms creates rooms through the client package on a broker started without them,
// twice: the second time they exist, which counts as success.
func TestCreateRooms(t *testing.T) {
	before := runtime.NumGoroutine()
	defer checkGoroutines(t, before)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := &Config{User: "bench"}
	tg, err := startTarget(ctx, targetRoomqMemory, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tg.stop(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for range 2 {
		if err := createRooms(ctx, tg.url, cfg, []string{"setup-a", "setup-b"}, log); err != nil {
			t.Fatal(err)
		}
	}
	c, err := connectClient(ctx, clientConfig(tg.url, cfg, "bench-check", "bench-check", log))
	if err != nil {
		t.Fatal(err)
	}
	defer closeClient(c)
	if err := c.Join(ctx, "setup-b", func(client.Message) {}, nil); err != nil {
		t.Errorf("join a created room: %v", err)
	}
	if err := c.Join(ctx, "setup-c", func(client.Message) {}, nil); err == nil {
		t.Error("joined a room that was not created")
	}
}
