package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// reconnectPause is how long a resuming subscriber stays away before it reconnects.
const reconnectPause = 50 * time.Millisecond

// resumer is a subscriber that disconnects and resumes with since.
type resumer struct {
	id   string
	user string

	mu         sync.Mutex // guards the fields below, written by the delivery goroutine
	started    bool
	first      uint64
	last       uint64
	epoch      string
	delivered  uint64
	duplicates uint64
	gaps       uint64
	missing    uint64
	resets     uint64
	hist       histogram
}

// receive accounts for one room message by its id.
func (r *resumer) receive(p *paho.Publish, live *atomic.Uint64) {
	now := time.Now()
	if p.Properties == nil {
		return
	}
	id, err := strconv.ParseUint(p.Properties.User.Get("id"), 10, 64)
	if err != nil {
		return // not a room message
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := p.Properties.User.Get("epoch"); e != "" {
		if r.epoch != "" && e != r.epoch {
			r.resets++
		}
		r.epoch = e
	}
	switch {
	case !r.started:
		r.started, r.first = true, id
	case id <= r.last:
		r.duplicates++
		return
	case id > r.last+1:
		r.gaps++
		r.missing += id - r.last - 1
	}
	r.last = id
	r.delivered++
	live.Add(1)
	if h, err := parseHeader(p.Payload); err == nil {
		r.hist.record(now.Sub(h.sent))
	}
}

// resumeProps returns the SUBSCRIBE user properties that resume after the last id seen.
func (r *resumer) resumeProps() paho.UserProperties {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started {
		return nil
	}
	props := paho.UserProperties{{Key: "since", Value: strconv.FormatUint(r.last, 10)}}
	if r.epoch != "" {
		props = append(props, paho.UserProperty{Key: "epoch", Value: r.epoch})
	}
	return props
}

// runResume publishes to one room while cfg.Subscribers subscribers repeatedly disconnect and
// resume with since; it counts the gaps and duplicates in the ids they see.
func runResume(ctx context.Context, cfg *Config, t *target, log *slog.Logger) (Result, error) {
	d, err := newDialer(t.url, cfg.Sources)
	if err != nil {
		return Result{}, err
	}
	room := topic(t, cfg.Room)
	var errs errorLog
	var live, resumes atomic.Uint64
	resumers := make([]*resumer, cfg.Subscribers)
	clients := make([]*paho.Client, cfg.Subscribers)
	connect := func(ctx context.Context, i int) (*paho.Client, error) {
		r := resumers[i]
		c, err := d.connect(ctx, clientOptions{ClientID: r.id, User: r.user, Password: cfg.Password, CleanStart: true,
			OnPublish: func(p *paho.Publish) { r.receive(p, &live) }})
		if err != nil {
			return nil, err
		}
		if err := subscribe(ctx, c, room, byte(cfg.QoS), r.resumeProps()); err != nil {
			disconnect(c)
			return nil, err
		}
		return c, nil
	}
	for i := range resumers {
		resumers[i] = &resumer{id: fmt.Sprintf("bench-resume-%d", i), user: fmt.Sprintf("%s-resume-%d", cfg.User, i)}
		if clients[i], err = connect(ctx, i); err != nil {
			for _, c := range clients[:i] {
				disconnect(c)
			}
			return Result{}, fmt.Errorf("set up subscribers: %w", err)
		}
	}

	// The publishers are a fanout load with no subscribers of their own.
	g := &group{topic: room}
	for i := range cfg.Publishers {
		g.members = append(g.members, &member{id: fmt.Sprintf("pub-%d", i), pub: true, pubIdx: uint32(i)})
	}
	l := &load{cfg: cfg, t: t, log: log, d: d, groups: []*group{g}}
	defer l.disconnectAll()
	if err := l.connectAll(ctx); err != nil {
		return Result{}, err
	}

	hardCtx, hardCancel := context.WithTimeout(ctx, cfg.Duration+cfg.Drain)
	defer hardCancel()
	runCtx, cancel := context.WithTimeout(hardCtx, cfg.Duration)
	defer cancel()
	start := time.Now()
	stopProgress := progress(runCtx, log, t.name, start, func() []any {
		return []any{"sent", l.sent.Load(), "delivered", live.Load(), "resumes", resumes.Load(), "errors", errs.n.Load()}
	})
	pubsDone := make(chan struct{})
	go func() {
		defer close(pubsDone)
		l.runPublishers(runCtx, hardCtx, start)
	}()
	var subs sync.WaitGroup
	for i := range resumers {
		subs.Add(1)
		go func() {
			defer subs.Done()
			for n := 0; cfg.Count == 0 || n < cfg.Count; n++ {
				jitter := time.Duration(rand.Int64N(int64(cfg.ResumeEvery)/2 + 1))
				select {
				case <-runCtx.Done():
					return
				case <-time.After(cfg.ResumeEvery/2 + jitter):
				}
				disconnect(clients[i])
				clients[i] = nil
				time.Sleep(reconnectPause)
				c, err := connect(hardCtx, i)
				if err != nil {
					errs.add(fmt.Errorf("resume: %w", err))
					return
				}
				clients[i] = c
				resumes.Add(1)
			}
		}()
	}
	<-pubsDone
	loadEnd := time.Now()
	cancel()
	subs.Wait()
	stopProgress()
	// Wait until every connected subscriber caught up with the highest id seen.
	for hardCtx.Err() == nil {
		final, behind := uint64(0), false
		for _, r := range resumers {
			r.mu.Lock()
			final = max(final, r.last)
			r.mu.Unlock()
		}
		for i, r := range resumers {
			r.mu.Lock()
			behind = behind || (clients[i] != nil && r.last < final)
			r.mu.Unlock()
		}
		if !behind && final > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range clients {
		disconnect(c)
	}

	res := Result{Seconds: loadEnd.Sub(start).Seconds(), RateUnit: "deliveries/s", Resumes: resumes.Load()}
	var hist histogram
	final := uint64(0)
	for _, r := range resumers {
		final = max(final, r.last)
	}
	var missing, resets uint64
	for _, r := range resumers {
		hist.merge(&r.hist)
		if r.started {
			res.Expected += final - r.first + 1
		}
		res.Delivered += r.delivered
		res.Duplicates += r.duplicates
		res.Gaps += r.gaps
		missing += r.missing
		resets += r.resets
	}
	if res.Expected > res.Delivered {
		res.Lost = res.Expected - res.Delivered
	}
	res.Sent, res.Acked = l.sent.Load(), l.acked.Load()
	res.SendRate = float64(res.Sent) / res.Seconds
	res.Rate = float64(res.Delivered) / time.Since(start).Seconds()
	res.Latency = hist.summary()
	res.Notes = append(res.Notes, fmt.Sprintf("%d resumes; %d gaps (%d ids missing), %d duplicates, %d epoch changes; last id %d",
		res.Resumes, res.Gaps, missing, res.Duplicates, resets, final))
	errs.n.Add(l.errs.n.Load())
	res.Errors, res.FirstErrors = errs.n.Load(), append(errs.samples(), l.errs.samples()...)
	return res, nil
}
