package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/roomq/roomq/client"
)

// closeTimeout bounds closing one client.Client.
const closeTimeout = 5 * time.Second

// clientConfig returns the configuration of a client.Client of the tool: the roomq-specific
// paths (room creation, history RPCs, resuming subscribers) use the project's client package,
// as an application would. -sources does not apply to them.
func clientConfig(url string, cfg *Config, id, user string, log *slog.Logger) client.Config {
	cc := client.Config{ServerURLs: []string{url}, ClientID: id, User: user, Logger: log}
	if cfg.Password != "" {
		cc.Password = []byte(cfg.Password)
	}
	return cc
}

// connectClient connects a client.Client with cc.
func connectClient(ctx context.Context, cc client.Config) (*client.Client, error) {
	cctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c, err := client.Connect(cctx, cc)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", cc.ClientID, err)
	}
	return c, nil
}

// closeClient closes c, if any, and waits (boundedly) until its goroutines are done.
func closeClient(c *client.Client) {
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = c.Close(ctx) // the tool is done with c; a failed DISCONNECT changes nothing
}
