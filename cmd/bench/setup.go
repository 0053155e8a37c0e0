package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/roomq/roomq/client"
)

// setupTimeout bounds the creation of the rooms on a broker named by URL.
const setupTimeout = 30 * time.Second

// createRooms creates names on the roomq broker at url with client.RoomCreate and the binary
// checker, so that the benchmark payloads pass unchanged. Rooms that exist already are kept as
// they are: their checker must be binary too. It needs rooms management enabled on the broker.
func createRooms(ctx context.Context, url string, cfg *Config, names []string, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	c, err := connectClient(ctx, clientConfig(url, cfg, "bench-setup", cfg.User+"-setup", log))
	if err != nil {
		return fmt.Errorf("create rooms: %w", err)
	}
	defer closeClient(c)
	for _, room := range names {
		err := c.RoomCreate(ctx, room, &client.RoomOptions{Checker: "binary"})
		if err != nil && !errors.Is(err, client.ErrRoomExists) {
			return fmt.Errorf("create room %q: %w", room, err)
		}
	}
	return nil
}
