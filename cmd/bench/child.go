package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"
)

// childEnv names the environment variable that makes the tool a broker child: it holds the
// brokerSpec, as JSON, of the broker to run.
const childEnv = "ROOMQ_BENCH_CHILD"

// childTimeout bounds the start of a broker child (until its ready line) and each answer.
const childTimeout = 10 * time.Second

// childMemoryKind is the memory figure of a broker child.
const childMemoryKind = "process RSS after GC"

// childMain runs the tool as a broker child and exits when childEnv is set; otherwise it
// returns. main and the tests' TestMain call it first.
func childMain() {
	spec, ok := os.LookupEnv(childEnv)
	if !ok {
		return
	}
	answers := os.Stdout
	os.Stdout = os.Stderr // a stray print must not mix with the answers
	os.Exit(runChild(spec, os.Stdin, answers, os.Stderr))
}

// runChild is the tool as a broker child. It starts the broker of spec (JSON), prints
// "ready <url>" on stdout, then answers the commands read from stdin, one a line, until stop
// or the end of stdin:
//
//	mem   collects garbage, returns the freed memory to the system and answers
//	      "mem <go> <rss>": its Go HeapInuse+StackInuse and its resident set size, in bytes
//	stop  stops the CPU profile, shuts the broker down and exits
//
// It returns the exit code.
func runChild(spec string, stdin io.Reader, stdout, stderr io.Writer) int {
	if err := serveChild(spec, stdin, stdout); err != nil {
		fmt.Fprintln(stderr, "bench child:", err)
		return 1
	}
	return 0
}

// serveChild is runChild, returning its error.
func serveChild(specJSON string, stdin io.Reader, stdout io.Writer) (err error) {
	var spec brokerSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		return fmt.Errorf("read %s: %w", childEnv, err)
	}
	// The terminal's Ctrl-C reaches the whole process group: the tool handles it and stops
	// the child through stdin (Pdeathsig and the end of stdin cover the tool's death).
	signal.Ignore(os.Interrupt, syscall.SIGTERM)
	raiseFileLimit()
	ctx := context.Background()
	t, err := spec.start(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, stopTimeout)
		defer cancel()
		err = errors.Join(err, t.stop(sctx))
	}()
	if spec.CPUProfile != "" {
		stopProfile, perr := startProfile(spec.CPUProfile)
		if perr != nil {
			return perr
		}
		defer func() { err = errors.Join(err, stopProfile()) }()
	}
	if _, err := fmt.Fprintf(stdout, "ready %s\n", t.url); err != nil {
		return fmt.Errorf("write ready: %w", err)
	}
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		var err error
		switch cmd := strings.TrimSpace(sc.Text()); cmd {
		case "mem":
			debug.FreeOSMemory() // a garbage collection, then the freed pages go back
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			var res uint64
			if res, err = rss(os.Getpid()); err == nil {
				_, err = fmt.Fprintf(stdout, "mem %d %d\n", ms.HeapInuse+ms.StackInuse, res)
			}
		case "stop":
			return nil
		default:
			_, err = fmt.Fprintf(stdout, "error: unknown command %q\n", cmd)
		}
		if err != nil {
			return fmt.Errorf("answer %q: %w", sc.Text(), err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read commands: %w", err)
	}
	return nil
}

// startProfile starts a CPU profile of this process into path and returns the function that
// stops it and closes the file.
func startProfile(path string) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		return nil
	}, nil
}

// brokerChild is the tool's side of a broker child (see runChild).
type brokerChild struct {
	name string
	p    *process
	// stdin carries the commands; stdout, read through answers, the ready line and the
	// answers.
	stdin, stdout *os.File
	answers       *bufio.Reader
	// mu serialises the requests.
	mu sync.Mutex
}

// startChild starts the broker of spec in a child process, this executable run again with
// spec in childEnv, and waits for it to be ready. stopExtra, when not nil, runs after the
// child exited, or when it failed to start.
func startChild(ctx context.Context, spec brokerSpec, stopExtra func()) (*target, error) {
	fail := func(err error) (*target, error) {
		if stopExtra != nil {
			stopExtra()
		}
		return nil, fmt.Errorf("start %s in a child process: %w", spec.Target, err)
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return fail(err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		_, _ = inR.Close(), inW.Close()
		return fail(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	out := &lockedBuffer{}
	// The broker's errors go to the tool's stderr, as they do in-process, and are kept for
	// the error messages.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, io.MultiWriter(os.Stderr, out)
	setPdeathsig(cmd)
	p, err := runProcess(spec.Target, cmd, out)
	_, _ = inR.Close(), outW.Close() // the child has its copies
	if err != nil {
		_, _ = inW.Close(), outR.Close()
		return fail(err)
	}
	c := &brokerChild{name: spec.Target, p: p, stdin: inW, stdout: outR, answers: bufio.NewReader(outR)}
	line, err := c.readLine(ctx)
	if err == nil && !strings.HasPrefix(line, "ready ") {
		err = fmt.Errorf("got %q instead of ready", line)
	}
	if err != nil {
		p.stop()
		_, _ = inW.Close(), outR.Close()
		return fail(fmt.Errorf("%w (%s)", err, p.output()))
	}
	return &target{
		name: spec.Target, url: strings.TrimPrefix(line, "ready "),
		rooms: spec.Target != targetMochi, roomsReady: true,
		memory: c.memory, memoryKind: childMemoryKind,
		stop: func(ctx context.Context) error {
			err := c.stop(ctx)
			if stopExtra != nil {
				stopExtra()
			}
			return err
		},
	}, nil
}

// readLine reads one line from the child within childTimeout, or until ctx ends.
func (c *brokerChild) readLine(ctx context.Context) (string, error) {
	if err := c.stdout.SetReadDeadline(time.Now().Add(childTimeout)); err != nil {
		return "", fmt.Errorf("read from the child: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.stdout.SetReadDeadline(time.Now()) })
	defer stop()
	line, err := c.answers.ReadString('\n')
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("read from the child: %w", ctx.Err())
		}
		return "", fmt.Errorf("read from the child: %w", err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// memory asks the child for its memory and returns its resident set size after a garbage
// collection.
func (c *brokerChild) memory() (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.stdin, "mem\n"); err != nil {
		return 0, fmt.Errorf("ask %s for its memory: %w", c.name, err)
	}
	line, err := c.readLine(context.Background())
	if err != nil {
		return 0, fmt.Errorf("ask %s for its memory: %w", c.name, err)
	}
	var goMem, res uint64
	if _, err := fmt.Sscanf(line, "mem %d %d", &goMem, &res); err != nil {
		return 0, fmt.Errorf("ask %s for its memory: answer %q: %w", c.name, line, err)
	}
	return res, nil
}

// stop asks the child to stop, waits for its exit until ctx ends or for stopTimeout, and
// kills it then.
func (c *brokerChild) stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	// A child that cannot read this has exited already, and its exit status says why.
	_, _ = io.WriteString(c.stdin, "stop\n")
	_ = c.stdin.Close()
	err := c.p.wait(ctx)
	_ = c.stdout.Close()
	if err != nil {
		return fmt.Errorf("stop %s: %w (%s)", c.name, err, c.p.output())
	}
	return nil
}
