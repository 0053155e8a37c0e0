package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	childMain()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole tool: it parses args, runs the scenario against each target and prints
// the report to stdout. It returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 2
	}
	level := slog.LevelInfo
	if cfg.Quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	targets := []string{cfg.Target}
	if cfg.Compare {
		targets = cfg.Targets
	}
	report := Report{Config: cfg}
	failed := false
	for _, name := range targets {
		if ctx.Err() != nil {
			break
		}
		res := runTarget(ctx, cfg, name, log)
		failed = failed || res.Error != ""
		report.Results = append(report.Results, res)
	}
	if cfg.JSON {
		err = writeJSON(stdout, report)
	} else {
		err = writeTable(stdout, report)
	}
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	if failed {
		return 1
	}
	return 0
}

// stopTimeout bounds stopping a broker started here.
const stopTimeout = 15 * time.Second

// runTarget starts (or names) one target, runs the scenario against it and stops it. A
// broker that does not stop cleanly (it crashed, had to be killed, or its child process found
// a data race under -race) fails the run.
func runTarget(ctx context.Context, cfg *Config, name string, log *slog.Logger) (res Result) {
	res = Result{Target: name, Scenario: cfg.Scenario}
	log.Info("starting target", "target", name, "scenario", cfg.Scenario)
	t, err := startTarget(ctx, name, cfg, cfg.roomNames())
	if errors.Is(err, errSkipped) {
		res.Skipped = err.Error()
		log.Warn("target skipped", "target", name, "reason", err)
		return res
	}
	if err != nil {
		res.Error = err.Error()
		log.Error("target failed to start", "target", name, "error", err)
		return res
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		defer cancel()
		if err := t.stop(sctx); err != nil {
			log.Error("stop target", "target", name, "error", err)
			if res.Error == "" {
				res.Error = err.Error()
			}
		}
	}()
	res.URL = t.url
	if why := unsupported(cfg, t); why != "" {
		res.Skipped = why
		return res
	}
	if t.rooms && !t.roomsReady && cfg.Scenario != scenarioConnections {
		if err := createRooms(ctx, t.url, cfg, cfg.roomNames(), log); err != nil {
			res.Error = err.Error()
			return res
		}
	}
	if path := cfg.profilePath(name); path != "" && t.inProcess {
		stopProfile, err := startProfile(path)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		defer func() {
			if err := stopProfile(); err != nil {
				log.Warn("stop the cpu profile", "target", name, "error", err)
			}
		}()
	}
	out, err := runScenario(ctx, cfg, t, log)
	out.Target, out.URL, out.Scenario = res.Target, res.URL, res.Scenario
	if err != nil {
		out.Error = err.Error()
		log.Error("scenario failed", "target", name, "error", err)
	}
	if out.CPUSteal != nil && *out.CPUSteal > stealWarnPercent {
		log.Warn("the hypervisor stole CPU time during the load phase: the results are disturbed",
			"target", name, "steal", fmt.Sprintf("%.1f%%", *out.CPUSteal))
	}
	return out
}

// unsupported says why scenario cannot run against t, or "".
func unsupported(cfg *Config, t *target) string {
	if t.rooms {
		return ""
	}
	switch {
	case cfg.Scenario == scenarioRPC && cfg.RPC == "history":
		return "no broker RPC ($rpc/roomHistoryGet) on this broker"
	}
	return ""
}

// runScenario dispatches to the scenario.
func runScenario(ctx context.Context, cfg *Config, t *target, log *slog.Logger) (Result, error) {
	switch cfg.Scenario {
	case scenarioFanout:
		return runFanout(ctx, cfg, t, log)
	case scenarioRooms:
		return runRooms(ctx, cfg, t, log)
	case scenarioRPC:
		return runRPC(ctx, cfg, t, log)
	case scenarioConnections:
		return runConnections(ctx, cfg, t, log)
	case scenarioResume:
		return runResume(ctx, cfg, t, log)
	}
	return Result{}, fmt.Errorf("unknown scenario %q", cfg.Scenario)
}
