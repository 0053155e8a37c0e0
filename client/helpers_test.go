package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/client"
	"github.com/roomq/roomq/internal/mqtttest"
)

// timeout bounds every wait of the tests.
const timeout = 10 * time.Second

func tcpURL(b *broker.Broker) string { return "tcp://" + b.MQTTAddr() }
func wsURL(b *broker.Broker) string  { return "ws://" + b.HTTPAddr() + "/mqtt" }

// connect connects user to url with cfg changed by mutate (which may be nil) and closes the
// client when the test ends.
func connect(t *testing.T, url, user string, mutate func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{
		ServerURLs:   []string{url},
		User:         user,
		Logger:       mqtttest.TestLogger(),
		ReconnectMin: 5 * time.Millisecond,
		ReconnectMax: 50 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := client.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("connect %s: %v", user, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("close %s: %v", user, err)
		}
	})
	return c
}

// testCtx returns a context that ends after timeout or with the test.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// inbox collects values passed to a callback, to wait for them with a deadline.
type inbox[T any] struct {
	ch chan T
}

func newInbox[T any]() *inbox[T] { return &inbox[T]{ch: make(chan T, 10000)} }

// put is the callback.
func (b *inbox[T]) put(v T) { b.ch <- v }

// next returns the next value, failing the test after timeout.
func (b *inbox[T]) next(t *testing.T, what string) T {
	t.Helper()
	select {
	case v := <-b.ch:
		return v
	case <-time.After(timeout):
		t.Fatalf("no %s within %v", what, timeout)
		panic("unreachable")
	}
}

// until returns the first value for which ok is true, dropping the others.
func (b *inbox[T]) until(t *testing.T, what string, ok func(T) bool) T {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case v := <-b.ch:
			if ok(v) {
				return v
			}
		case <-deadline:
			t.Fatalf("no %s within %v", what, timeout)
		}
	}
}
