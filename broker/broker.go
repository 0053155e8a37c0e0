package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/rs/xid"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/commands"
	"github.com/roomq/roomq/devices"
	"github.com/roomq/roomq/gateway"
	"github.com/roomq/roomq/hooks"
	"github.com/roomq/roomq/metrics"
	"github.com/roomq/roomq/mqttws"
	"github.com/roomq/roomq/rooms"
	"github.com/roomq/roomq/store"
	"github.com/roomq/roomq/web"
)

// Broker is one broker instance.
type Broker struct {
	opts     Options
	log      *slog.Logger
	store    store.Store
	rooms    *rooms.Service
	devices  *devices.Registry
	commands *commands.Service
	api      *commands.API
	router   *hooks.Router
	mqtt     *mqtt.Server
	tcp      *listeners.Net
	tls      *listeners.Net
	ws       *mqttws.Listener
	gateway  *gateway.Gateway // the JSON WebSocket gateway on /v1/ws; nil without HTTP
	http     *http.Server
	httpLn   net.Listener

	ready    atomic.Bool
	bridges  atomic.Pointer[func() any] // the bridges' state (SetBridgeState)
	stop     chan struct{}              // closed by Shutdown: the broker's own goroutines end
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
}

// New assembles a broker from opts. Nothing listens until Start.
func New(opts Options) (_ *Broker, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.InstanceID == "" {
		opts.InstanceID = xid.New().String()
	}
	if opts.MaxPacketSize == 0 {
		opts.MaxPacketSize = DefaultMaxPacketSize
	}
	if opts.MaxPendingWrites <= 0 {
		opts.MaxPendingWrites = DefaultMaxPendingWrites
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = DefaultShutdownGrace
	}
	if opts.RoomCheckInterval <= 0 {
		opts.RoomCheckInterval = DefaultRoomCheckInterval
	}
	if len(opts.Admins) == 0 {
		opts.Admins = []string{DefaultAdminUser}
	}
	if len(opts.Rooms) == 0 && !opts.NoDefaultRooms {
		opts.Rooms = []store.Room{{Name: DefaultGeneralRoom, Owner: DefaultAdminUser, Checker: rooms.CheckerText}}
	}
	log := opts.Logger
	if opts.Authenticator == nil {
		opts.Authenticator = acl.DevAuth{Admins: opts.Admins}
		log.Warn("development mode: every user name is accepted with any password; configure auth for production")
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	opts.Metrics.SetInstance(opts.InstanceID)
	st := opts.Store
	if st == nil {
		st = store.NewMemory()
	}
	st = metrics.InstrumentStore(st, opts.Metrics)
	b := &Broker{opts: opts, log: log, store: st, stop: make(chan struct{})}
	var opened []net.Listener // closed again when New fails
	defer func() {
		if err != nil {
			for _, ln := range opened {
				_ = ln.Close()
			}
		}
	}()

	caps := mqtt.NewDefaultServerCapabilities()
	caps.Compatibilities.NoInheritedPropertiesOnAck = true // MOCHI-NOTES 16
	caps.MaximumPacketSize = opts.MaxPacketSize
	caps.MaximumClientWritesPending = int32(opts.MaxPendingWrites)
	mochiLog := slog.New(mochiLogHandler{log.Handler()}).With("component", "mqtt")
	b.mqtt = mqtt.New(&mqtt.Options{Capabilities: caps, Logger: mochiLog})
	opts.Metrics.ObserveMQTT(b.mqtt.Info)

	policy := acl.Policy{Rules: opts.TopicRules}
	var router *hooks.Router
	notifier := &lateNotifier{}
	b.rooms, err = rooms.New(rooms.Options{
		Store:                 st,
		Checkers:              opts.Checkers,
		Notifier:              notifier,
		HistoryMaxSize:        opts.HistoryMaxSize,
		HistoryMaxGetMessages: opts.HistoryMaxGetMessages,
		Logger:                log,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b.devices, err = devices.New(devices.Options{
		Store:          st,
		Rooms:          b.rooms,
		FailureTimeout: opts.FailureTimeout,
		Fenced:         notifier.disconnectAll,
		Instance:       opts.InstanceID,
		Notifier:       notifier,
		Wills:          notifier,
		Logger:         log,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b.commands, err = commands.New(commands.Options{
		Rooms:           b.rooms,
		Devices:         b.devices,
		Lists:           st,
		ListLimit:       opts.ListLimit,
		MaxRoomsPerUser: opts.MaxRoomsPerUser,
		Policy:          policy,
		RoomsManagement: opts.RoomsManagement,
		RoomDefaults: store.Room{
			NotifyUserlist:    opts.NotifyUserlist,
			NotifyAccessLists: opts.NotifyAccessLists,
			MaxMessageSize:    opts.MaxRoomMessageSize,
		},
		Hooks:  opts.Hooks,
		Logger: log,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	auth, err := hooks.NewAuth(hooks.AuthOptions{
		Server:        b.mqtt,
		Authenticator: opts.Authenticator,
		Policy:        policy,
		Access:        st,
		Connections:   st,
		Logger:        log,
		Metrics:       opts.Metrics,
		Hooks:         b.commands.Hooks(),

		MaxConnectionsPerUser:         opts.MaxConnectionsPerUser,
		MaxSubscriptionsPerConnection: opts.MaxSubscriptionsPerConnection,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	router, err = hooks.NewRouter(hooks.RouterOptions{
		Server:       b.mqtt,
		Auth:         auth,
		Rooms:        b.rooms,
		Devices:      b.devices,
		Commands:     b.commands,
		Policy:       policy,
		Access:       st,
		Broadcast:    st,
		Routes:       st,
		Retained:     st,
		Replies:      st,
		ReplyTimeout: opts.ReplyTimeout,
		Instance:     opts.InstanceID,
		MaxQueued:    opts.MaxQueued,
		WriteDelay:   opts.WriteDelay,
		PublishRate:  opts.PublishRate,
		PublishBurst: opts.PublishBurst,
		Logger:       log,
		Metrics:      opts.Metrics,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	notifier.Router = router
	b.router = router
	if b.api, err = commands.NewAPI(b.commands, opts.Admins[0]); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	opts.Metrics.SetCommands(b.commands.Names())
	opts.Metrics.ObserveLocal(router)
	b.commands.SetTransport(&transport{Router: router, notifier: notifier})
	if err := b.mqtt.AddHook(auth, nil); err != nil {
		return nil, fmt.Errorf("broker: add auth hook: %w", err)
	}
	if err := b.mqtt.AddHook(router, nil); err != nil {
		return nil, fmt.Errorf("broker: add router hook: %w", err)
	}

	if opts.MQTTAddr != "" {
		ln, err := net.Listen("tcp", opts.MQTTAddr)
		if err != nil {
			return nil, fmt.Errorf("broker: listen for MQTT on %s: %w", opts.MQTTAddr, err)
		}
		opened = append(opened, ln)
		b.tcp = listeners.NewNet("tcp", batchListener{ln})
		if err := b.mqtt.AddListener(safeClose{b.tcp, b.mqtt}); err != nil {
			return nil, fmt.Errorf("broker: listen for MQTT on %s: %w", opts.MQTTAddr, err)
		}
	}
	if (opts.MQTTTLSAddr != "" || opts.HTTPTLS) && opts.TLS == nil {
		return nil, errors.New("broker: MQTTTLSAddr and HTTPTLS need Options.TLS")
	}
	if opts.MQTTTLSAddr != "" {
		ln, err := net.Listen("tcp", opts.MQTTTLSAddr)
		if err != nil {
			return nil, fmt.Errorf("broker: listen for MQTT over TLS on %s: %w", opts.MQTTTLSAddr, err)
		}
		opened = append(opened, ln)
		// The batches are gathered above TLS, so that a batch is one TLS record, not one per
		// packet.
		b.tls = listeners.NewNet("tls", batchListener{tls.NewListener(ln, opts.TLS)})
		if err := b.mqtt.AddListener(safeClose{b.tls, b.mqtt}); err != nil {
			return nil, fmt.Errorf("broker: listen for MQTT over TLS on %s: %w", opts.MQTTTLSAddr, err)
		}
	}
	if opts.HTTPAddr != "" {
		b.ws, err = mqttws.New(mqttws.Options{
			ID:             "ws",
			Address:        opts.HTTPAddr,
			AllowedOrigins: opts.AllowedOrigins,
			ReadLimit:      int64(opts.MaxPacketSize) + 1024,
			Logger:         log,
		})
		if err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
		if err := b.mqtt.AddListener(safeClose{b.ws, b.mqtt}); err != nil {
			return nil, fmt.Errorf("broker: add WebSocket listener: %w", err)
		}
		ln, err := net.Listen("tcp", opts.HTTPAddr)
		if err != nil {
			return nil, fmt.Errorf("broker: listen for HTTP on %s: %w", opts.HTTPAddr, err)
		}
		if opts.HTTPTLS {
			ln = tls.NewListener(ln, opts.TLS)
		}
		b.gateway, err = gateway.New(gateway.Options{
			Authenticator:         opts.Authenticator,
			Sessions:              b.devices,
			Topics:                b.mqtt.Topics,
			AllowedOrigins:        opts.AllowedOrigins,
			MaxConnectionsPerUser: opts.MaxConnectionsPerUser,
			Logger:                log,
			Metrics:               opts.Metrics,
		})
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("broker: %w", err)
		}
		notifier.gateway = b.gateway
		b.httpLn = ln
		b.http = &http.Server{Handler: b.routes(), ReadHeaderTimeout: defaultReadHeaderTime}
	}
	return b, nil
}

// lateNotifier forwards notifications to the router, which is built after the services that
// notify through it.
type lateNotifier struct {
	*hooks.Router
	gateway *gateway.Gateway // nil without HTTP
}

// transport is the router as the commands' transport, with the gateway's connections: the
// disconnect command ends those of this instance too.
type transport struct {
	*hooks.Router
	notifier *lateNotifier // its gateway is set once built
}

// Disconnect implements commands.Transport.
func (t *transport) Disconnect(clientID string) bool {
	if gw := t.notifier.gateway; gw != nil && gw.Disconnect(clientID) {
		return true
	}
	return t.Router.Disconnect(clientID)
}

// disconnectAll ends every connection of this instance, MQTT and gateway alike.
func (n *lateNotifier) disconnectAll() {
	n.DisconnectAll()
	if n.gateway != nil {
		n.gateway.DisconnectAll()
	}
}

// Start creates the configured rooms and starts serving.
func (b *Broker) Start(ctx context.Context) error {
	if _, err := b.ensureRooms(ctx); err != nil {
		return err
	}
	// Before the devices start: cleaning up after an earlier run publishes wills, which go to
	// the other instances.
	if err := b.router.StartSharing(ctx); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if err := b.devices.Start(ctx); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	// presence/+ is complete here too: the presence of users connected to other instances.
	// (StartSharing subscribed to the other instances' messages; newer ones win over these.)
	if ps, err := b.devices.Presences(ctx); err != nil {
		b.log.Warn("read the presence of users connected elsewhere", "error", err)
	} else {
		b.router.RetainPresences(ps)
	}
	if err := b.router.LoadRetained(ctx); err != nil {
		b.log.Warn("retained messages of the other instances", "error", err)
	}
	if err := b.mqtt.Serve(); err != nil {
		return fmt.Errorf("broker: serve MQTT: %w", err)
	}
	if b.ws != nil {
		select { // Mochi starts its listeners in goroutines: /mqtt answers 503 until then
		case <-b.ws.Serving():
		case <-ctx.Done():
			return fmt.Errorf("broker: start WebSocket listener: %w", ctx.Err())
		}
	}
	if b.http != nil {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			if err := b.http.Serve(b.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				b.log.Error("HTTP server stopped", "error", err)
			}
		}()
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.keepRooms()
	}()
	b.ready.Store(true)
	b.log.Info("broker started", "instance", b.opts.InstanceID, "mqtt", b.MQTTAddr(), "http", b.HTTPAddr())
	return nil
}

// listeners returns the broker's MQTT listeners.
func (b *Broker) listeners() []listeners.Listener {
	var out []listeners.Listener
	if b.tcp != nil {
		out = append(out, b.tcp)
	}
	if b.tls != nil {
		out = append(out, b.tls)
	}
	if b.ws != nil {
		out = append(out, b.ws)
	}
	return out
}

// ensureRooms creates the configured rooms that do not exist, and returns those it created.
func (b *Broker) ensureRooms(ctx context.Context) ([]string, error) {
	var created []string
	for _, r := range b.opts.Rooms {
		r.NotifyUserlist, r.NotifyAccessLists = b.opts.NotifyUserlist, b.opts.NotifyAccessLists
		if r.MaxMessageSize == 0 {
			r.MaxMessageSize = b.opts.MaxRoomMessageSize
		}
		err := b.rooms.Create(ctx, r)
		switch {
		case err == nil:
			created = append(created, r.Name)
		case !errors.Is(err, store.ErrRoomExists):
			return created, fmt.Errorf("broker: create room %q: %w", r.Name, err)
		}
	}
	return created, nil
}

// keepRooms re-creates, every RoomCheckInterval until Shutdown, the configured rooms the store
// lost (a Redis restarted without its data): they come back with a new history epoch, which
// tells resuming clients that the history was reset.
func (b *Broker) keepRooms() {
	t := time.NewTicker(b.opts.RoomCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.RoomCheckInterval)
		created, err := b.ensureRooms(ctx)
		cancel()
		if err != nil {
			b.log.Debug("check configured rooms", "error", err) // the store is down: /readyz says so
			continue
		}
		if len(created) > 0 {
			b.log.Warn("configured rooms were missing from the store and were created again", "rooms", created)
		}
	}
}

// MQTTAddr returns the address the MQTT TCP listener is bound to, or "" without one.
func (b *Broker) MQTTAddr() string {
	if b.tcp == nil {
		return ""
	}
	return b.tcp.Address()
}

// MQTTTLSAddr returns the address the MQTT over TLS listener is bound to, or "" without one.
func (b *Broker) MQTTTLSAddr() string {
	if b.tls == nil {
		return ""
	}
	return b.tls.Address()
}

// HTTPAddr returns the address the HTTP server is bound to, or "" without one.
func (b *Broker) HTTPAddr() string {
	if b.httpLn == nil {
		return ""
	}
	return b.httpLn.Addr().String()
}

// Metrics returns the broker's metrics (Options.Metrics, or those it made).
func (b *Broker) Metrics() *metrics.Metrics { return b.opts.Metrics }

// Rooms returns the rooms service, to create rooms or register checkers from Go.
func (b *Broker) Rooms() *rooms.Service { return b.rooms }

// Commands returns the command service, to run commands from Go.
func (b *Broker) Commands() *commands.Service { return b.commands }

// Shutdown stops the broker: it reports not ready, disconnects every client (v5 clients get
// DISCONNECT 0x8B), stops the HTTP server and closes the store. It is safe to call more than
// once; later calls return the first result.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.stopOnce.Do(func() {
		b.ready.Store(false)
		close(b.stop)
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, b.opts.ShutdownGrace)
			defer cancel()
		}
		var errs []error
		// Stop accepting and disconnect the clients first, so that no connection is being
		// established while Mochi's Close runs (it races with EstablishConnection in v2.7.9).
		for _, l := range b.listeners() {
			safeClose{l, b.mqtt}.Close(nil)
		}
		// Gateway connections end while the router still publishes their users' presence.
		if b.gateway != nil {
			if err := b.gateway.Close(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		if err := b.mqtt.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close MQTT server: %w", err))
		}
		if b.http != nil {
			if err := b.http.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop HTTP server: %w", err))
			}
		}
		b.wg.Wait()
		b.devices.Close()
		if err := b.devices.Deregister(ctx); err != nil {
			errs = append(errs, err)
		}
		b.rooms.Close()
		if err := b.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close store: %w", err))
		}
		b.stopErr = errors.Join(errs...)
		b.log.Info("broker stopped", "instance", b.opts.InstanceID)
	})
	return b.stopErr
}

// Ready reports whether the broker serves clients and its store answers.
func (b *Broker) Ready(ctx context.Context) error {
	if !b.ready.Load() {
		return errors.New("not started or shutting down")
	}
	if err := b.store.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

func (b *Broker) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/mqtt", b.ws)
	mux.Handle("/v1/ws", b.gateway)
	mux.Handle("GET /metrics", b.opts.Metrics.Handler())
	mux.Handle("/api/", b.adminHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := b.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("/", web.Handler()) // GET and HEAD only; "GET /" would conflict with "/mqtt"
	return mux
}

// Subscriptions returns the topic filters of the connection with client id clientID on this
// instance, sorted, and whether it is connected here.
func (b *Broker) Subscriptions(clientID string) ([]string, bool) {
	cl, ok := b.mqtt.Clients.Get(clientID)
	if !ok || cl.Closed() {
		return nil, false
	}
	filters := make([]string, 0)
	for f := range cl.State.Subscriptions.GetAll() {
		filters = append(filters, f)
	}
	sort.Strings(filters)
	return filters, true
}
