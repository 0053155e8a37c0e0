package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// setupTimeout bounds the creation of the rooms on a broker named by URL.
const setupTimeout = 30 * time.Second

// createRooms creates names on a roomq broker named by URL with $rpc/roomCreate and the binary
// checker, so that the benchmark payloads pass unchanged. Rooms that exist already are kept as
// they are: their checker must be binary too. It needs rooms management enabled on the broker.
func createRooms(ctx context.Context, d *dialer, cfg *Config, names []string) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	user := cfg.User + "-setup"
	id := "bench-setup"
	replies := "users/" + user + "/replies/" + id
	answers := make(chan *paho.Publish, 16)
	c, err := d.connect(ctx, clientOptions{ClientID: id, User: user, Password: cfg.Password, CleanStart: true,
		OnPublish: func(p *paho.Publish) {
			select {
			case answers <- p:
			default:
			}
		}})
	if err != nil {
		return fmt.Errorf("create rooms: %w", err)
	}
	defer disconnect(c)
	if err := subscribe(ctx, c, replies, 1, nil); err != nil {
		return fmt.Errorf("create rooms: %w", err)
	}
	for i, room := range names {
		args, _ := json.Marshal(map[string]any{"room": room, "checker": "binary"})
		corr := fmt.Sprint(i)
		req := &paho.Publish{Topic: "$rpc/roomCreate", QoS: 1, Payload: args,
			Properties: &paho.PublishProperties{ResponseTopic: replies, CorrelationData: []byte(corr)}}
		if _, err := c.Publish(ctx, req); err != nil {
			return fmt.Errorf("create room %q: %w", room, err)
		}
		if err := awaitCreated(ctx, answers, corr); err != nil {
			return fmt.Errorf("create room %q: %w", room, err)
		}
	}
	return nil
}

// awaitCreated waits for the roomCreate answer with correlation data corr; roomExists counts
// as success.
func awaitCreated(ctx context.Context, answers <-chan *paho.Publish, corr string) error {
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("no answer: %w", ctx.Err())
		case p := <-answers:
			if p.Properties == nil || string(p.Properties.CorrelationData) != corr {
				continue
			}
			var resp struct {
				Error *struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(p.Payload, &resp); err != nil {
				return fmt.Errorf("bad answer: %w", err)
			}
			if resp.Error != nil && resp.Error.Code != "roomExists" {
				return fmt.Errorf("%s: %s", resp.Error.Code, resp.Error.Message)
			}
			return nil
		}
	}
}
