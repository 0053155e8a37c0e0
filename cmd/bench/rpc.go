package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/sync/errgroup"
)

// rpcTimeout bounds one round trip.
const rpcTimeout = 10 * time.Second

// rpcClient is one requester, with the responder it calls in device mode.
type rpcClient struct {
	idx       int
	user      string
	id        string
	replies   string
	client    *paho.Client
	responder *paho.Client
	answers   chan *paho.Publish
	hist      histogram
}

// runRPC measures request/response round trips: $rpc/roomHistoryGet of cfg.History messages
// (-rpc history), or device-to-device requests through response topics (-rpc device).
// Each requester keeps one request outstanding.
func runRPC(ctx context.Context, cfg *Config, t *target, log *slog.Logger) (Result, error) {
	d, err := newDialer(t.url, cfg.Sources)
	if err != nil {
		return Result{}, err
	}
	var errs errorLog
	room := topic(t, cfg.Room)
	if cfg.RPC == "history" {
		if err := prefill(ctx, d, cfg, room); err != nil {
			return Result{}, err
		}
	}
	clients := make([]*rpcClient, cfg.Clients)
	var responders sync.WaitGroup // the goroutines answering device requests
	defer func() {
		for _, c := range clients {
			if c != nil {
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
		eg.Go(func() error { return c.setUp(ectx, d, cfg, room, &errs, &responders) })
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
	start := time.Now()
	stopProgress := progress(runCtx, log, t.name, start, func() []any {
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
	elapsed := time.Since(start)
	cancel()
	stopProgress()

	res := Result{Seconds: elapsed.Seconds(), RateUnit: "round trips/s"}
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
	if cfg.RPC == "history" {
		res.Notes = append(res.Notes, fmt.Sprintf("roomHistoryGet of %d binary messages of %d bytes", cfg.History, cfg.Size))
	} else {
		res.Notes = append(res.Notes, fmt.Sprintf("device request/response, %d-byte payloads", cfg.Size))
	}
	return res, nil
}

// prefill publishes cfg.History messages to room at QoS 1, so that history reads return that
// many.
func prefill(ctx context.Context, d *dialer, cfg *Config, room string) error {
	c, err := d.connect(ctx, clientOptions{ClientID: "bench-prefill", User: cfg.User + "-prefill", Password: cfg.Password, CleanStart: true})
	if err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	defer disconnect(c)
	buf := newPayload(cfg.Size)
	for i := range cfg.History {
		stamp(buf, 0, uint64(i), time.Now())
		pctx, cancel := context.WithTimeout(ctx, rpcTimeout)
		pr, err := c.Publish(pctx, &paho.Publish{Topic: room, QoS: 1, Payload: buf})
		cancel()
		if err != nil {
			return fmt.Errorf("prefill: %w", err)
		}
		if pr != nil && pr.ReasonCode >= 0x80 {
			return fmt.Errorf("prefill: PUBACK 0x%02x", pr.ReasonCode)
		}
	}
	return nil
}

// deviceTopic is the request topic of responder i.
func deviceTopic(i int) string { return fmt.Sprintf("devices/bench-%d/rpc/echo", i) }

// setUp connects the requester (and its responder in device mode) and subscribes.
func (c *rpcClient) setUp(ctx context.Context, d *dialer, cfg *Config, room string, errs *errorLog, responders *sync.WaitGroup) error {
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
	if cfg.RPC == "history" {
		return subscribe(ctx, c.client, room, 0, nil) // reading the history needs joining the room
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
	if cfg.RPC == "history" {
		args, _ := json.Marshal(map[string]any{"room": cfg.Room, "id": 0, "limit": cfg.History})
		req = &paho.Publish{Topic: "$rpc/roomHistoryGet", QoS: byte(cfg.QoS), Payload: args}
	} else {
		req = &paho.Publish{Topic: deviceTopic(c.idx), QoS: byte(cfg.QoS), Payload: newPayload(cfg.Size)}
	}
	for n := 0; ctx.Err() == nil && (cfg.Count == 0 || n < cfg.Count); n++ {
		corr := strconv.Itoa(n)
		req.Properties = &paho.PublishProperties{ResponseTopic: c.replies, CorrelationData: []byte(corr)}
		start := time.Now()
		sent.Add(1)
		rctx, cancel := context.WithTimeout(hardCtx, rpcTimeout)
		err := c.roundTrip(rctx, cfg, req, corr)
		cancel()
		if err != nil {
			errs.add(err)
			continue
		}
		c.hist.record(time.Since(start))
		done.Add(1)
	}
}

// roundTrip sends req and waits for the answer with correlation data corr.
func (c *rpcClient) roundTrip(ctx context.Context, cfg *Config, req *paho.Publish, corr string) error {
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
			if cfg.RPC == "history" {
				return checkHistory(p.Payload, cfg.History)
			}
			if len(p.Payload) != len(req.Payload) {
				return fmt.Errorf("device answer of %d bytes, want %d", len(p.Payload), len(req.Payload))
			}
			return nil
		}
	}
}

// checkHistory checks that a roomHistoryGet answer holds want messages.
func checkHistory(payload []byte, want int) error {
	var resp struct {
		Result []json.RawMessage `json:"result"`
		Error  *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(payload, &resp); err != nil {
		return fmt.Errorf("roomHistoryGet answer: %w", err)
	}
	if resp.Error != nil {
		return fmt.Errorf("roomHistoryGet: %s: %s", resp.Error.Code, resp.Error.Message)
	}
	if len(resp.Result) != want {
		return fmt.Errorf("roomHistoryGet returned %d messages, want %d", len(resp.Result), want)
	}
	return nil
}
