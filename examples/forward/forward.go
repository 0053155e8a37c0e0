// Package forward is an example of the broker's command hooks and server-side API: it
// forwards every message of some rooms into an aggregate room, with an After hook on
// roomMessage, which sees room messages posted by RPC and by PUBLISH alike.
//
// The aggregate room must use the json checker: each forwarded message is the object
// {"from": "<room>", "message": <the original message as in history>}, posted by the
// broker's system user. It is loop-safe: the aggregate room's own messages, the forwarded
// ones included, are never forwarded. (Two forwarders that feed each other's source rooms
// would still loop; do not configure that.)
//
// Usage, between broker.New and Start:
//
//	b, err := broker.New(opts)
//	...
//	err = forward.Install(b.Hooks(), b.API(), forward.Options{
//		Sources:   []string{"sales", "support"},
//		Aggregate: "all",
//	})
//	...
//	err = b.Start(ctx)
package forward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/wire"
)

// Options configure the forwarding.
type Options struct {
	// Sources are the rooms whose messages are forwarded. Required.
	Sources []string
	// Aggregate is the room that receives them; it must exist and use the json checker
	// when messages arrive. Required, and not one of Sources.
	Aggregate string
	// Logger receives the failures to forward; nil means slog.Default().
	Logger *slog.Logger
}

// forwarded is the message posted to the aggregate room.
type forwarded struct {
	From    string          `json:"from"`
	Message json.RawMessage `json:"message"`
}

// Install registers the After hook that forwards the messages of opts.Sources to
// opts.Aggregate through api. A message that cannot be forwarded is logged; the original
// message and its sender are not affected.
func Install(h *commands.Hooks, api *commands.API, opts Options) error {
	if h == nil || api == nil {
		return errors.New("forward: hooks and API are required")
	}
	if len(opts.Sources) == 0 || opts.Aggregate == "" {
		return errors.New("forward: Options.Sources and Options.Aggregate are required")
	}
	for _, r := range append(slices.Clone(opts.Sources), opts.Aggregate) {
		if err := wire.CheckName("room", r); err != nil {
			return fmt.Errorf("forward: %w", err)
		}
	}
	if slices.Contains(opts.Sources, opts.Aggregate) {
		return fmt.Errorf("forward: the aggregate room %q is also a source", opts.Aggregate)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	sources := make(map[string]bool, len(opts.Sources))
	for _, r := range opts.Sources {
		sources[r] = true
	}
	h.After(commands.CommandRoomMessage, func(ctx context.Context, _ *commands.Call, out *commands.Outcome) error {
		m := out.Message
		if out.Err != nil || m == nil || m.Room == opts.Aggregate || !sources[m.Room] {
			return nil // failed, or not a source: the aggregate's own messages end here
		}
		payload, err := json.Marshal(forwarded{From: m.Room, Message: m.JSON()})
		if err != nil {
			return nil // unreachable: m.JSON is valid JSON
		}
		if _, err := api.PostRoom(ctx, opts.Aggregate, payload); err != nil {
			log.Warn("forward message", "room", m.Room, "id", m.ID, "aggregate", opts.Aggregate, "error", err)
		}
		return nil
	})
	return nil
}
