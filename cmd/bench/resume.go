package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/client"
)

// reconnectPause is how long a resuming subscriber stays away before it reconnects.
const reconnectPause = 50 * time.Millisecond

// quietPeriod is how long no delivery may arrive before the resume scenario takes the
// highest id seen as the last one.
const quietPeriod = 300 * time.Millisecond

// sessionExpiry keeps the sessions of resuming subscribers on brokers without rooms.
const sessionExpiry = 600

// stream is the sequence of messages a resuming subscriber follows: the ids of the room on
// roomq, or the sequence numbers of one publisher (plus one) elsewhere.
type stream struct {
	seen    seqSet
	first   uint64
	last    uint64 // the highest id seen
	started bool
}

// resumer is a subscriber that disconnects and resumes: with a client.Client joined with since
// on roomq, with a persistent session elsewhere.
type resumer struct {
	id   string
	user string

	mu         sync.Mutex // guards the fields below, written by the delivery goroutine
	streams    map[uint32]*stream
	epoch      string
	delivered  uint64
	duplicates uint64
	jumps      uint64 // ids that arrived more than one after the previous highest
	resets     uint64
	hist       histogram
}

// receive accounts for one message of a broker without rooms, by publisher and sequence
// number.
func (r *resumer) receive(p *paho.Publish, live *atomic.Uint64) {
	now := time.Now()
	h, err := parseHeader(p.Payload)
	if err != nil {
		return
	}
	r.account(h.pub, h.seq+1, "", h, true, now, live)
}

// receiveMessage accounts for one room message delivered by the client package, by its id.
func (r *resumer) receiveMessage(m client.Message, live *atomic.Uint64) {
	now := time.Now()
	h, err := parseHeader(m.Payload)
	r.account(0, m.ID, m.Epoch, h, err == nil, now, live)
}

// account records delivery id of stream key, of history epoch epoch ("" when none), received
// at now; h is its header when hasHeader.
func (r *resumer) account(key uint32, id uint64, epoch string, h header, hasHeader bool, now time.Time, live *atomic.Uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if epoch != "" {
		if r.epoch != "" && epoch != r.epoch {
			r.resets++
		}
		r.epoch = epoch
	}
	s := r.streams[key]
	if s == nil {
		s = &stream{}
		r.streams[key] = s
	}
	if s.seen.add(id) {
		r.duplicates++
		return
	}
	switch {
	case !s.started:
		s.started, s.first, s.last = true, id, id
	case id > s.last:
		if id > s.last+1 {
			r.jumps++
		}
		s.last = id
	}
	r.delivered++
	live.Add(1)
	if hasHeader {
		r.hist.record(now.Sub(h.sent))
	}
}

// resumeConn is the connection of a resuming subscriber: a client.Client on roomq, a paho
// client with a persistent session elsewhere.
type resumeConn struct {
	room *client.Client
	raw  *paho.Client
}

// close disconnects c, if any, and waits until its goroutines are done.
func (c *resumeConn) close() {
	if c == nil {
		return
	}
	closeClient(c.room)
	disconnect(c.raw)
}

// runResume publishes to one room while cfg.Subscribers subscribers repeatedly disconnect and
// resume, and counts what they missed or got twice. On roomq each subscriber is a
// client.Client joined to the room; to resume, it is closed and a new one joins with
// JoinOptions{Resume, Since, Epoch} from the old one's Position, as an application that
// restarts would (the room ids must arrive in order with no gap; the client package drops
// ids it delivered already, so duplicates here are those an application would see). On
// other brokers, which have no room ids, they keep a
// persistent session (clean start off, session expiry) and subscribe at cfg.QoS, and the
// publishers' sequence numbers are checked (out-of-order arrival is not a gap there: QoS 1
// publishes of one publisher may be in flight together, see -inflight).
func runResume(ctx context.Context, cfg *Config, t *target, log *slog.Logger) (Result, error) {
	d, err := newDialer(t.url, cfg.Sources)
	if err != nil {
		return Result{}, err
	}
	room := topic(t, cfg.Room)
	var errs errorLog
	var live, resumes atomic.Uint64
	resumers := make([]*resumer, cfg.Subscribers)
	clients := make([]*resumeConn, cfg.Subscribers)
	// connect connects subscriber i, resuming after prev (nil the first time).
	connect := func(ctx context.Context, i int, prev *resumeConn) (*resumeConn, error) {
		r := resumers[i]
		if t.rooms {
			return connectRoomResumer(ctx, t.url, cfg, r, prev, &live, &errs, log)
		}
		o := clientOptions{ClientID: r.id, User: r.user, Password: cfg.Password, CleanStart: prev == nil,
			SessionExpiry: sessionExpiry, OnPublish: func(p *paho.Publish) { r.receive(p, &live) }}
		c, _, ca, err := d.connectConn(ctx, o)
		if err != nil {
			return nil, err
		}
		if ca.SessionPresent {
			// The session kept the subscription. Subscribing again could fail: Mochi refuses a
			// SUBSCRIBE whose packet id is in use by one of its own in-flight deliveries.
			return &resumeConn{raw: c}, nil
		}
		if err := subscribe(ctx, c, room, byte(cfg.QoS), nil); err != nil {
			disconnect(c)
			return nil, err
		}
		return &resumeConn{raw: c}, nil
	}
	for i := range resumers {
		resumers[i] = &resumer{id: fmt.Sprintf("bench-resume-%d", i), user: fmt.Sprintf("%s-resume-%d", cfg.User, i),
			streams: make(map[uint32]*stream)}
		if clients[i], err = connect(ctx, i, nil); err != nil {
			for _, c := range clients[:i] {
				c.close()
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
	phase := startLoad()
	start := phase.start
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
				prev := clients[i]
				prev.close()
				clients[i] = nil
				time.Sleep(reconnectPause)
				c, err := connect(hardCtx, i, prev)
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
	phase.stop()
	cancel()
	subs.Wait()
	stopProgress()

	// The last id of each stream is the highest any subscriber saw; wait until every
	// connected subscriber has it.
	finals := func() map[uint32]uint64 {
		out := map[uint32]uint64{}
		for _, r := range resumers {
			r.mu.Lock()
			for k, s := range r.streams {
				out[k] = max(out[k], s.last)
			}
			r.mu.Unlock()
		}
		return out
	}
	// The last publishes may still be on their way to everyone: wait for a quiet period too.
	lastLive, lastChange := live.Load(), time.Now()
	for hardCtx.Err() == nil {
		if n := live.Load(); n != lastLive {
			lastLive, lastChange = n, time.Now()
		}
		if time.Since(lastChange) < quietPeriod {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		fin, behind := finals(), false
		for i, r := range resumers {
			r.mu.Lock()
			for k, last := range fin {
				s := r.streams[k]
				behind = behind || (clients[i] != nil && (s == nil || s.last < last))
			}
			r.mu.Unlock()
		}
		if !behind && len(fin) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range clients {
		c.close()
	}

	res := phase.result("deliveries/s")
	res.Resumes = resumes.Load()
	var hist histogram
	fin := finals()
	var jumps, resets uint64
	for _, r := range resumers {
		hist.merge(&r.hist)
		for k, s := range r.streams {
			res.Expected += fin[k] - s.first + 1
		}
		res.Delivered += r.delivered
		res.Duplicates += r.duplicates
		jumps += r.jumps
		resets += r.resets
	}
	if res.Expected > res.Delivered {
		res.Lost = res.Expected - res.Delivered
	}
	if t.rooms {
		res.Gaps = jumps
	}
	res.Sent, res.Acked = l.sent.Load(), l.acked.Load()
	res.SendRate = float64(res.Sent) / res.Seconds
	res.Rate = float64(res.Delivered) / time.Since(start).Seconds()
	res.Latency = hist.summary()
	how := "client.Client, Join with Since/Epoch"
	if !t.rooms {
		how = "persistent sessions"
	}
	res.Notes = append(res.Notes, fmt.Sprintf("%d resumes (%s); %d ids missing, %d out-of-order jumps, %d duplicates, %d epoch changes; last ids %v",
		res.Resumes, how, res.Lost, jumps, res.Duplicates, resets, fin))
	errs.n.Add(l.errs.n.Load())
	res.Errors, res.FirstErrors = errs.n.Load(), append(errs.samples(), l.errs.samples()...)
	return res, nil
}

// connectRoomResumer connects r's client.Client and joins cfg.Room: live the first time, after
// prev's position (read once prev is closed, so that it counts every message delivered) when
// resuming. A dropped connection counts as an error; the client reconnects and resumes by
// itself.
func connectRoomResumer(ctx context.Context, url string, cfg *Config, r *resumer, prev *resumeConn, live *atomic.Uint64, errs *errorLog, log *slog.Logger) (*resumeConn, error) {
	var opts *client.JoinOptions
	if prev != nil {
		if since, epoch, ok := prev.room.Position(cfg.Room); ok {
			opts = &client.JoinOptions{Resume: true, Since: since, Epoch: epoch}
		}
	}
	cc := clientConfig(url, cfg, r.id, r.user, log)
	cc.OnConnectionLost = func() { errs.add(fmt.Errorf("%s: connection lost", r.id)) }
	c, err := connectClient(ctx, cc)
	if err != nil {
		return nil, err
	}
	if err := c.Join(ctx, cfg.Room, func(m client.Message) { r.receiveMessage(m, live) }, opts); err != nil {
		closeClient(c)
		return nil, fmt.Errorf("%s: %w", r.id, err)
	}
	return &resumeConn{room: c}, nil
}
