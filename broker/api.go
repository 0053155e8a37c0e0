package broker

import (
	"net/http"

	"github.com/roomq/roomq/adminapi"
	"github.com/roomq/roomq/commands"
)

// API returns the broker's server-side API: commands as any user, rooms, system messages,
// events, direct messages, presence and disconnects (see docs/api.md). Its system user, the
// author of what the system posts, is the first of Options.Admins.
func (b *Broker) API() *commands.API { return b.api }

// adminHandler returns the handler of /api/: the admin HTTP API when Options.AdminToken is
// set, otherwise one that answers 404 to everything. It logs once which it is.
func (b *Broker) adminHandler() http.Handler {
	if b.opts.AdminToken != "" {
		h, err := adminapi.New(adminapi.Options{API: b.api, Token: b.opts.AdminToken, Logger: b.log, Bridges: b.bridgeState})
		if err == nil {
			b.log.Info("admin HTTP API on", "path", "/api/")
			return h
		}
		b.log.Error("admin HTTP API off", "error", err) // unexpected: the options are set
	} else {
		b.log.Info("admin HTTP API off: no admin token configured (admin_api.token)")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"code":"notFound","message":"the admin API is off: no admin token is configured"}}` + "\n"))
	})
}

// Hooks returns the broker's command and connection hooks (Options.Hooks, or the empty set
// the broker made), to register hooks after New and before Start: hooks that need the
// broker's API, for example.
func (b *Broker) Hooks() *commands.Hooks { return b.commands.Hooks() }

// SetBridgeState sets what GET /api/bridges reports: the state of the bridges that run
// alongside this broker (package bridge). Call it once, before or after Start.
func (b *Broker) SetBridgeState(state func() any) { b.bridges.Store(&state) }

// bridgeState reports the bridges' state, none before SetBridgeState.
func (b *Broker) bridgeState() any {
	if f := b.bridges.Load(); f != nil {
		return (*f)()
	}
	return []struct{}{}
}
