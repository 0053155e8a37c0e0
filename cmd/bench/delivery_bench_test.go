package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"
)

// BenchmarkDelivery measures end-to-end delivery over loopback TCP to 100 subscribers of one
// room (roomq, memory store) or one topic (plain Mochi): one op is one message published at
// QoS 1 (16 in flight) and received by all 100 subscribers at QoS 0. The subscribers are raw
// (rawsub.go), so that the clients cost little; they still share the CPU with the broker.
func BenchmarkDelivery(b *testing.B) {
	for _, name := range []string{targetRoomqMemory, targetMochi} {
		for _, subs := range []int{1, 100} {
			b.Run(fmt.Sprintf("%s/subscribers=%d", name, subs), func(b *testing.B) {
				benchDelivery(b, name, subs)
			})
		}
	}
}

func benchDelivery(b *testing.B, name string, subs int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cfg := &Config{Scenario: scenarioFanout, Transport: "tcp", Room: "bench", User: "bench", QoS: 1, Inflight: 16, Size: 64,
		Publishers: 1, Subscribers: subs, Drain: time.Minute, Subscriber: "raw"}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t, err := startTarget(ctx, name, cfg, cfg.roomNames())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = t.stop(context.Background()) }()
	d, err := newDialer(t.url, 0)
	if err != nil {
		b.Fatal(err)
	}
	g := &group{topic: topic(t, cfg.Room)}
	for i := range subs {
		g.members = append(g.members, &member{id: fmt.Sprintf("sub-%d", i), sub: true})
	}
	pub := &member{id: "pub", pub: true}
	g.members = append(g.members, pub)
	l := &load{cfg: cfg, t: t, log: log, d: d, groups: []*group{g}}
	defer l.disconnectAll()
	cfg.QoS = 0 // the subscriptions
	if err := l.connectAll(ctx); err != nil {
		b.Fatal(err)
	}
	cfg.QoS = 1 // the publishes
	b.ReportAllocs()
	b.ResetTimer()
	cfg.Count = b.N
	start := time.Now()
	l.publish(ctx, ctx, g, pub, start)
	want := uint64(b.N) * uint64(subs)
	for l.delivered.Load() < want {
		if ctx.Err() != nil || time.Since(start) > time.Minute {
			b.Fatalf("delivered %d of %d", l.delivered.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(want)/time.Since(start).Seconds(), "deliveries/s")
	if n := l.errs.n.Load(); n > 0 {
		b.Fatalf("%d errors: %v", n, l.errs.samples())
	}
}
