package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/sync/errgroup"

	"github.com/roomq/roomq/client"
)

// rpcTimeout bounds one round trip.
const rpcTimeout = 10 * time.Second

// rpcClient is one requester: a client.Client or a rawRequester in history mode (roomq only),
// or a paho client with the responder it calls in device mode (any broker).
type rpcClient struct {
	idx       int
	user      string
	id        string
	replies   string
	rq        *client.Client // history mode, -requester client
	raw       *rawRequester  // history mode, -requester raw
	client    *paho.Client   // device mode
	responder *paho.Client
	answers   chan *paho.Publish
	hist      histogram
}

// runRPC measures request/response round trips: roomHistoryGet of cfg.History messages
// (-rpc history, roomq only; by raw requesters or client.RoomHistoryGet, after -requester), or
// device-to-device requests through response topics (-rpc device, raw paho: it runs against
// every broker). Each requester keeps one request outstanding.
func runRPC(ctx context.Context, cfg *Config, t *target, log *slog.Logger) (Result, error) {
	d, err := newDialer(t.url, cfg.Sources)
	if err != nil {
		return Result{}, err
	}
	var errs errorLog
	if cfg.RPC == "history" {
		if err := prefill(ctx, t.url, cfg, log); err != nil {
			return Result{}, err
		}
	}
	clients := make([]*rpcClient, cfg.Clients)
	var responders sync.WaitGroup // the goroutines answering device requests
	defer func() {
		for _, c := range clients {
			if c != nil {
				closeClient(c.rq)
				if c.raw != nil {
					c.raw.close()
				}
				disconnect(c.client)
				disconnect(c.responder)
			}
		}
		responders.Wait()
	}()
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(connectParallelism)
	for i := range clients {
		c := &rpcClient{idx: i, user: fmt.Sprintf("%s-rpc-%d", cfg.User, i), id: fmt.Sprintf("bench-rpc-%d", i),
			answers: make(chan *paho.Publish, 16)}
		c.replies = "users/" + c.user + "/replies/" + c.id
		clients[i] = c
		eg.Go(func() error {
			switch {
			case cfg.RPC == "history" && cfg.Requester == "raw":
				var err error
				c.raw, err = newRawRequester(ectx, d, c.id, c.user, cfg.Password, cfg.Room, byte(cfg.QoS), cfg.History)
				return err
			case cfg.RPC == "history":
				return c.join(ectx, t.url, cfg, &errs, log)
			}
			return c.setUp(ectx, d, cfg, &errs, &responders)
		})
	}
	if err := eg.Wait(); err != nil {
		return Result{}, fmt.Errorf("set up RPC clients: %w", err)
	}

	var sent, done atomic.Uint64
	// Requests are sent until runCtx ends; answers are awaited until hardCtx ends.
	hardCtx, hardCancel := context.WithTimeout(ctx, cfg.Duration+cfg.Drain)
	defer hardCancel()
	runCtx, cancel := context.WithTimeout(hardCtx, cfg.Duration)
	defer cancel()
	phase := startLoad()
	stopProgress := progress(runCtx, log, t.name, phase.start, func() []any {
		return []any{"requests", sent.Load(), "answers", done.Load(), "errors", errs.n.Load()}
	})
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.loop(runCtx, hardCtx, cfg, &sent, &done, &errs)
		}()
	}
	wg.Wait()
	phase.stop()
	cancel()
	stopProgress()

	res := phase.result("round trips/s")
	var hist histogram
	for _, c := range clients {
		hist.merge(&c.hist)
	}
	res.Sent, res.Delivered, res.Expected = sent.Load(), done.Load(), sent.Load()
	res.Lost = res.Sent - res.Delivered
	res.Rate = float64(res.Delivered) / res.Seconds
	res.SendRate = float64(res.Sent) / res.Seconds
	res.Latency = hist.summary()
	res.Errors, res.FirstErrors = errs.n.Load(), errs.samples()
	switch {
	case cfg.RPC == "history" && cfg.Requester == "raw":
		res.Notes = append(res.Notes, fmt.Sprintf("roomHistoryGet of %d binary messages of %d bytes, raw requesters (QoS %d requests; answers checked by a scan)", cfg.History, cfg.Size, cfg.QoS))
	case cfg.RPC == "history":
		res.Notes = append(res.Notes, fmt.Sprintf("client.RoomHistoryGet of %d binary messages of %d bytes (QoS 1 requests)", cfg.History, cfg.Size))
	default:
		res.Notes = append(res.Notes, fmt.Sprintf("device request/response, %d-byte payloads", cfg.Size))
	}
	return res, nil
}

// prefill posts cfg.History messages to cfg.Room with client.Send (QoS 1), so that history
// reads return that many.
func prefill(ctx context.Context, url string, cfg *Config, log *slog.Logger) error {
	c, err := connectClient(ctx, clientConfig(url, cfg, "bench-prefill", cfg.User+"-prefill", log))
	if err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	defer closeClient(c)
	buf := newPayload(cfg.Size)
	for i := range cfg.History {
		stamp(buf, 0, uint64(i), time.Now())
		pctx, cancel := context.WithTimeout(ctx, rpcTimeout)
		err := c.Send(pctx, cfg.Room, buf)
		cancel()
		if err != nil {
			return fmt.Errorf("prefill: %w", err)
		}
	}
	return nil
}

// join connects the history requester and joins the room: reading its history needs joining
// it. A dropped connection counts as an error (the client reconnects by itself).
func (c *rpcClient) join(ctx context.Context, url string, cfg *Config, errs *errorLog, log *slog.Logger) error {
	cc := clientConfig(url, cfg, c.id, c.user, log)
	cc.OnConnectionLost = func() { errs.add(fmt.Errorf("%s: connection lost", c.id)) }
	var err error
	if c.rq, err = connectClient(ctx, cc); err != nil {
		return err
	}
	if err := c.rq.Join(ctx, cfg.Room, func(client.Message) {}, nil); err != nil {
		return fmt.Errorf("%s: %w", c.id, err)
	}
	return nil
}

// deviceTopic is the request topic of responder i.
func deviceTopic(i int) string { return fmt.Sprintf("devices/bench-%d/rpc/echo", i) }

// setUp connects the device-mode requester and its responder, and subscribes them.
func (c *rpcClient) setUp(ctx context.Context, d *dialer, cfg *Config, errs *errorLog, responders *sync.WaitGroup) error {
	var err error
	c.client, err = d.connect(ctx, clientOptions{ClientID: c.id, User: c.user, Password: cfg.Password, CleanStart: true,
		OnError: errs.add,
		OnPublish: func(p *paho.Publish) {
			if p.Topic == c.replies {
				c.answers <- p
			}
		}})
	if err != nil {
		return err
	}
	if err := subscribe(ctx, c.client, c.replies, byte(cfg.QoS), nil); err != nil {
		return err
	}
	requests := make(chan *paho.Publish, 16)
	c.responder, err = d.connect(ctx, clientOptions{ClientID: fmt.Sprintf("bench-device-%d", c.idx),
		User: fmt.Sprintf("%s-device-%d", cfg.User, c.idx), Password: cfg.Password, CleanStart: true,
		OnError:   errs.add,
		OnPublish: func(p *paho.Publish) { requests <- p }})
	if err != nil {
		return err
	}
	responder := c.responder
	responders.Add(1)
	go func() {
		defer responders.Done()
		for {
			var p *paho.Publish
			select {
			case <-responder.Done():
				return
			case p = <-requests:
			}
			if p.Properties == nil || p.Properties.ResponseTopic == "" {
				errs.add(errors.New("device request without a response topic"))
				continue
			}
			reply := &paho.Publish{Topic: p.Properties.ResponseTopic, QoS: p.QoS, Payload: p.Payload,
				Properties: &paho.PublishProperties{CorrelationData: p.Properties.CorrelationData}}
			pctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
			if _, err := responder.Publish(pctx, reply); err != nil {
				errs.add(fmt.Errorf("device reply: %w", err))
			}
			cancel()
		}
	}()
	return subscribe(ctx, c.responder, deviceTopic(c.idx), byte(cfg.QoS), nil)
}

// loop sends requests one at a time until ctx ends or cfg.Count were sent; it waits for an
// answer until hardCtx ends.
func (c *rpcClient) loop(ctx, hardCtx context.Context, cfg *Config, sent, done *atomic.Uint64, errs *errorLog) {
	var req *paho.Publish
	if c.rq == nil && c.raw == nil {
		req = &paho.Publish{Topic: deviceTopic(c.idx), QoS: byte(cfg.QoS), Payload: newPayload(cfg.Size)}
	}
	for n := 0; ctx.Err() == nil && (cfg.Count == 0 || n < cfg.Count); n++ {
		start := time.Now()
		sent.Add(1)
		rctx, cancel := context.WithTimeout(hardCtx, rpcTimeout)
		var err error
		switch {
		case c.raw != nil:
			if err = c.raw.historyGet(rctx); err != nil {
				err = fmt.Errorf("%s: %w", c.id, err)
			}
		case c.rq != nil:
			err = c.historyGet(rctx, cfg)
		default:
			corr := strconv.Itoa(n)
			req.Properties = &paho.PublishProperties{ResponseTopic: c.replies, CorrelationData: []byte(corr)}
			err = c.roundTrip(rctx, req, corr)
		}
		cancel()
		if err != nil {
			errs.add(err)
			continue
		}
		c.hist.record(time.Since(start))
		done.Add(1)
	}
}

// historyGet reads the first cfg.History messages of the room and checks the answer.
func (c *rpcClient) historyGet(ctx context.Context, cfg *Config) error {
	msgs, err := c.rq.RoomHistoryGet(ctx, cfg.Room, 0, cfg.History)
	if err != nil {
		return fmt.Errorf("%s: %w", c.id, err)
	}
	return checkHistory(msgs, cfg.History)
}

// roundTrip sends the device request req and waits for the answer with correlation data corr.
func (c *rpcClient) roundTrip(ctx context.Context, req *paho.Publish, corr string) error {
	pr, err := c.client.Publish(ctx, req)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	if pr != nil && pr.ReasonCode >= 0x80 {
		return fmt.Errorf("request: PUBACK 0x%02x", pr.ReasonCode)
	}
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("answer %s: %w", corr, ctx.Err())
		case p := <-c.answers:
			if p.Properties == nil || string(p.Properties.CorrelationData) != corr {
				continue // a late answer to an earlier request
			}
			if len(p.Payload) != len(req.Payload) {
				return fmt.Errorf("device answer of %d bytes, want %d", len(p.Payload), len(req.Payload))
			}
			return nil
		}
	}
}

// checkHistory checks a roomHistoryGet answer: want messages, ids ascending.
func checkHistory(msgs []client.Message, want int) error {
	if len(msgs) != want {
		return fmt.Errorf("roomHistoryGet returned %d messages, want %d", len(msgs), want)
	}
	for i := 1; i < len(msgs); i++ {
		if msgs[i].ID <= msgs[i-1].ID {
			return fmt.Errorf("roomHistoryGet: id %d after id %d", msgs[i].ID, msgs[i-1].ID)
		}
	}
	return nil
}
