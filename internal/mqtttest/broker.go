package mqtttest

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/roomq/roomq/broker"
)

// StartBroker starts a broker on free loopback ports with the default options changed by
// mutate (which may be nil), and stops it when the test ends.
func StartBroker(t testing.TB, mutate func(*broker.Options)) *broker.Broker {
	t.Helper()
	opts := broker.DefaultOptions()
	opts.MQTTAddr = "127.0.0.1:0"
	opts.HTTPAddr = "127.0.0.1:0"
	opts.Logger = TestLogger()
	if mutate != nil {
		mutate(&opts)
	}
	b, err := broker.New(opts)
	if err != nil {
		t.Fatalf("new broker: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("shutdown broker: %v", err)
		}
	})
	return b
}

// TestLogger returns a logger for brokers under test: silent unless ROOMQ_TEST_LOG is set.
func TestLogger() *slog.Logger {
	if os.Getenv("ROOMQ_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// WaitFor polls cond until it returns true, failing the test after timeout.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
