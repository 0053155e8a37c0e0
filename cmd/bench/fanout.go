package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/sync/errgroup"
)

// connectParallelism bounds concurrent connection set-ups.
const connectParallelism = 16

// group is one topic with its publishers and subscribers: the single topic of fanout, or one
// room of the rooms scenario.
type group struct {
	topic string
	// members are the clients of the group; each publishes, subscribes, or both.
	members []*member
	// published counts the messages the group's publishers got out (QoS 0: written; QoS 1:
	// acknowledged with success).
	published atomic.Uint64
}

// member is one client connection of the load.
type member struct {
	id     string
	user   string
	pub    bool
	sub    bool
	pubIdx uint32
	client *paho.Client
	conn   net.Conn
	raw    *rawSub

	mu         sync.Mutex // guards the receive statistics below
	hist       histogram
	seqs       map[uint32]*seqSet
	delivered  uint64
	duplicates uint64
	foreign    uint64
}

// receive accounts for one delivered message.
func (m *member) receive(payload []byte, live *atomic.Uint64, lastRecv *atomic.Int64) {
	now := time.Now()
	h, err := parseHeader(payload)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.foreign++
		return
	}
	s := m.seqs[h.pub]
	if s == nil {
		s = &seqSet{}
		m.seqs[h.pub] = s
	}
	if s.add(h.seq) {
		m.duplicates++
		return
	}
	m.delivered++
	m.hist.record(now.Sub(h.sent))
	live.Add(1)
	lastRecv.Store(now.UnixNano())
}

// load runs publishers and subscribers over groups: the engine of fanout and rooms.
type load struct {
	cfg    *Config
	t      *target
	log    *slog.Logger
	d      *dialer
	groups []*group
	errs   errorLog

	sent      atomic.Uint64
	acked     atomic.Uint64
	delivered atomic.Uint64
	lastRecv  atomic.Int64
}

// runFanout runs P publishers and S subscribers on one topic.
func runFanout(ctx context.Context, cfg *Config, t *target, log *slog.Logger) (Result, error) {
	g := &group{topic: topic(t, cfg.Room)}
	for i := range cfg.Subscribers {
		g.members = append(g.members, &member{id: fmt.Sprintf("sub-%d", i), sub: true})
	}
	for i := range cfg.Publishers {
		g.members = append(g.members, &member{id: fmt.Sprintf("pub-%d", i), pub: true, pubIdx: uint32(i)})
	}
	return runLoad(ctx, cfg, t, log, []*group{g})
}

// runRooms runs R rooms of k members each; the first P members of each room also publish.
func runRooms(ctx context.Context, cfg *Config, t *target, log *slog.Logger) (Result, error) {
	var groups []*group
	pub := uint32(0)
	for r, room := range cfg.roomNames() {
		g := &group{topic: topic(t, room)}
		for i := range cfg.Members {
			m := &member{id: fmt.Sprintf("r%d-m%d", r, i), sub: true}
			if i < cfg.Publishers {
				m.pub, m.pubIdx = true, pub
				pub++
			}
			g.members = append(g.members, m)
		}
		groups = append(groups, g)
	}
	return runLoad(ctx, cfg, t, log, groups)
}

// runLoad connects every member, publishes for cfg.Duration (or cfg.Count messages per
// publisher), waits for the deliveries to drain and counts.
func runLoad(ctx context.Context, cfg *Config, t *target, log *slog.Logger, groups []*group) (Result, error) {
	d, err := newDialer(t.url, cfg.Sources)
	if err != nil {
		return Result{}, err
	}
	l := &load{cfg: cfg, t: t, log: log, d: d, groups: groups}
	defer l.disconnectAll()
	if err := l.connectAll(ctx); err != nil {
		return Result{}, err
	}

	// Publishing starts until runCtx ends; a publish under way gets until hardCtx ends.
	hardCtx, hardCancel := context.WithTimeout(ctx, cfg.Duration+cfg.Drain)
	defer hardCancel()
	runCtx, cancel := context.WithTimeout(hardCtx, cfg.Duration)
	defer cancel()
	phase := startLoad()
	start := phase.start
	stopProgress := progress(runCtx, log, t.name, start, func() []any {
		return []any{"sent", l.sent.Load(), "delivered", l.delivered.Load(), "errors", l.errs.n.Load()}
	})
	l.runPublishers(runCtx, hardCtx, start)
	phase.stop()
	cancel()
	stopProgress()
	l.drain(hardCtx)

	res := phase.result("deliveries/s")
	var hist histogram
	for _, g := range groups {
		subs := uint64(0)
		for _, m := range g.members {
			if !m.sub {
				continue
			}
			subs++
			m.mu.Lock()
			hist.merge(&m.hist)
			res.Delivered += m.delivered
			res.Duplicates += m.duplicates
			if m.foreign > 0 {
				res.Notes = append(res.Notes, fmt.Sprintf("%s got %d messages not from this run", m.id, m.foreign))
			}
			m.mu.Unlock()
		}
		res.Expected += g.published.Load() * subs
	}
	res.Sent, res.Acked = l.sent.Load(), l.acked.Load()
	if res.Expected > res.Delivered {
		res.Lost = res.Expected - res.Delivered
	}
	res.Latency = hist.summary()
	res.SendRate = float64(res.Sent) / res.Seconds
	if last := l.lastRecv.Load(); last > 0 {
		if span := time.Unix(0, last).Sub(start).Seconds(); span > 0 {
			res.Rate = float64(res.Delivered) / span
		}
	}
	res.Errors, res.FirstErrors = l.errs.n.Load(), l.errs.samples()
	return res, nil
}

// runPublishers runs every publisher until runCtx ends (or each sent cfg.Count) and waits for
// them. When hardCtx ends first, it closes the publishers' connections: a QoS 0 write blocks
// for as long as an overloaded broker does not read, and nothing else would end it.
func (l *load) runPublishers(runCtx, hardCtx context.Context, start time.Time) {
	var wg sync.WaitGroup
	var pubs []*member
	for _, g := range l.groups {
		for _, m := range g.members {
			if m.pub {
				pubs = append(pubs, m)
				wg.Add(1)
				go func() {
					defer wg.Done()
					l.publish(runCtx, hardCtx, g, m, start)
				}()
			}
		}
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-hardCtx.Done():
	}
	l.log.Warn("publishers still blocked after the drain time: closing their connections", "target", l.t.name)
	for _, m := range pubs {
		_ = m.conn.Close()
	}
	<-done
}

// connectAll connects every member, subscribers first.
func (l *load) connectAll(ctx context.Context) error {
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(connectParallelism)
	for gi, g := range l.groups {
		for mi, m := range g.members {
			eg.Go(func() error {
				m.user = fmt.Sprintf("%s-%d-%d", l.cfg.User, gi, mi)
				m.seqs = make(map[uint32]*seqSet)
				receive := func(p []byte) { m.receive(p, &l.delivered, &l.lastRecv) }
				if m.sub && !m.pub && l.cfg.Subscriber == "raw" {
					raw, err := newRawSub(ectx, l.d, "bench-"+m.id, m.user, l.cfg.Password, g.topic, byte(l.cfg.QoS), receive, l.errs.add)
					m.raw = raw
					return err
				}
				o := clientOptions{ClientID: "bench-" + m.id, User: m.user, Password: l.cfg.Password, CleanStart: true,
					OnError: l.errs.add}
				if m.sub {
					o.OnPublish = func(p *paho.Publish) { receive(p.Payload) }
				}
				c, conn, _, err := l.d.connectConn(ectx, o)
				if err != nil {
					return err
				}
				m.client, m.conn = c, conn
				if m.sub {
					return subscribe(ectx, c, g.topic, byte(l.cfg.QoS), nil)
				}
				return nil
			})
		}
	}
	if err := eg.Wait(); err != nil {
		return fmt.Errorf("set up clients: %w", err)
	}
	return nil
}

// publish sends the messages of one publisher until ctx ends or it sent cfg.Count; a publish
// under way gets until hardCtx ends.
func (l *load) publish(ctx, hardCtx context.Context, g *group, m *member, start time.Time) {
	workers := 1
	if l.cfg.QoS > 0 {
		workers = l.cfg.Inflight
	}
	var next atomic.Uint64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := newPayload(l.cfg.Size)
			for ctx.Err() == nil {
				seq := next.Add(1) - 1
				if l.cfg.Count > 0 && seq >= uint64(l.cfg.Count) {
					return
				}
				if l.cfg.Rate > 0 {
					at := start.Add(time.Duration(float64(seq) / l.cfg.Rate * float64(time.Second)))
					if wait := time.Until(at); wait > 0 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(wait):
						}
					}
				}
				stamp(buf, m.pubIdx, seq, time.Now())
				p := &paho.Publish{Topic: g.topic, QoS: byte(l.cfg.QoS), Payload: buf}
				l.sent.Add(1)
				pctx, cancel := context.WithTimeout(hardCtx, dialTimeout)
				pr, err := m.client.Publish(pctx, p)
				cancel()
				switch {
				case err != nil:
					l.errs.add(fmt.Errorf("publish %s: %w", m.id, err))
				case l.cfg.QoS > 0 && pr != nil && pr.ReasonCode >= 0x80:
					l.errs.add(fmt.Errorf("publish %s: PUBACK 0x%02x", m.id, pr.ReasonCode))
				default:
					if l.cfg.QoS > 0 {
						l.acked.Add(1)
					}
					g.published.Add(1)
				}
			}
		}()
	}
	wg.Wait()
}

// drain waits until every expected delivery arrived, deliveries stop for a second, or
// cfg.Drain passed.
func (l *load) drain(ctx context.Context) {
	expected := uint64(0)
	for _, g := range l.groups {
		subs := uint64(0)
		for _, m := range g.members {
			if m.sub {
				subs++
			}
		}
		expected += g.published.Load() * subs
	}
	deadline := time.Now().Add(l.cfg.Drain)
	lastCount, lastChange := l.delivered.Load(), time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		n := l.delivered.Load()
		if n >= expected {
			return
		}
		if n != lastCount {
			lastCount, lastChange = n, time.Now()
		} else if time.Since(lastChange) > time.Second {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// disconnectAll ends every client and waits for their goroutines.
func (l *load) disconnectAll() {
	var wg sync.WaitGroup
	for _, g := range l.groups {
		for _, m := range g.members {
			if m.client == nil && m.raw == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if m.raw != nil {
					m.raw.close()
				}
				disconnect(m.client)
			}()
		}
	}
	wg.Wait()
}

// progress logs a progress line every second until ctx ends; the returned function stops it
// and waits for the logging goroutine.
func progress(ctx context.Context, log *slog.Logger, target string, start time.Time, fields func() []any) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				args := append([]any{"target", target, "elapsed", now.Sub(start).Round(time.Second).String()}, fields()...)
				log.Info("progress", args...)
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
