package mqttws

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// protocol is what Listener.Protocol reports to Mochi.
const protocol = "ws"

// subprotocols are the WebSocket subprotocols the listener speaks, in order of preference.
// "mqtt" is the name MQTT 3.1.1 and 5 define [MQTT-6.0.0-3] [MQTT-6.0.0-4]; "mqttv3.1" is
// the name used by MQTT 3.1 clients.
var subprotocols = []string{"mqtt", "mqttv3.1"}

// Log keys.
const (
	logKeyListener = "listener"
	logKeyRemote   = "remote"
	logKeyOrigin   = "origin"
	logKeyOffered  = "subprotocols"
	logKeyError    = "error"
)

// Listener accepts MQTT-over-WebSocket connections through ServeHTTP and hands them to Mochi.
// It implements listeners.Listener and http.Handler. Create one with New.
type Listener struct {
	id               string
	address          string
	origins          originPolicy
	readLimit        int64
	handshakeTimeout time.Duration
	upgrader         websocket.Upgrader
	ownLogger        bool // the logger came from Options and Init must not replace it

	// goingAway is set by Close before connections are closed, so that they say 1001.
	goingAway atomic.Bool

	mu        sync.Mutex
	log       *slog.Logger
	establish listeners.EstablishFn // set by Serve; nil before
	closed    bool
	conns     map[*conn]struct{} // upgraded connections handed to Mochi
	handlers  sync.WaitGroup     // ServeHTTP calls admitted while open; Add only under mu
	done      chan struct{}      // closed by the first Close; Serve waits on it
	serving   chan struct{}      // closed once Serve has been called
	serveOnce sync.Once
}

var (
	_ listeners.Listener = (*Listener)(nil)
	_ http.Handler       = (*Listener)(nil)
)

// New validates opts, fills in defaults and returns a Listener that answers 503 until Mochi
// calls Serve.
func New(opts Options) (*Listener, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new websocket listener %q: %w", opts.ID, err)
	}
	origins, err := newOriginPolicy(opts.AllowedOrigins)
	if err != nil {
		return nil, fmt.Errorf("new websocket listener %q: %w", opts.ID, err)
	}
	l := &Listener{
		id:               opts.ID,
		address:          opts.Address,
		origins:          origins,
		readLimit:        opts.ReadLimit,
		handshakeTimeout: opts.HandshakeTimeout,
		conns:            make(map[*conn]struct{}),
		done:             make(chan struct{}),
		serving:          make(chan struct{}),
	}
	l.upgrader = websocket.Upgrader{
		HandshakeTimeout: opts.HandshakeTimeout,
		Subprotocols:     subprotocols,
		// ServeHTTP has checked the origin before upgrading.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	if opts.Logger != nil {
		l.log = opts.Logger.With(slog.String(logKeyListener, opts.ID))
		l.ownLogger = true
	} else {
		l.log = slog.New(slog.DiscardHandler)
	}
	return l, nil
}

// ID returns the listener's id.
func (l *Listener) ID() string { return l.id }

// Address returns Options.Address. The listener itself binds nothing.
func (l *Listener) Address() string { return l.address }

// Protocol returns "ws".
func (l *Listener) Protocol() string { return protocol }

// Init is called by Mochi when the listener is added to a server. It uses log (which Mochi
// labels with the listener id) unless Options.Logger was set. It opens nothing and never fails.
func (l *Listener) Init(log *slog.Logger) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.ownLogger && log != nil {
		l.log = log
	}
	return nil
}

// Serve is called by Mochi (in a goroutine of its own) to start the listener. It records
// establish, from which ServeHTTP accepts connections, and blocks until Close.
func (l *Listener) Serve(establish listeners.EstablishFn) {
	l.mu.Lock()
	if !l.closed {
		l.establish = establish
	}
	l.mu.Unlock()
	l.serveOnce.Do(func() { close(l.serving) })
	<-l.done
}

// Serving is closed once Mochi has called Serve: from then on ServeHTTP upgrades connections
// (before, it answers 503). Mochi starts its listeners in goroutines, so a caller that opens
// the HTTP port right after mqtt.Server.Serve waits for it first.
func (l *Listener) Serving() <-chan struct{} { return l.serving }

// Close stops the listener: later ServeHTTP calls answer 503 and Serve returns. It calls
// closeClients (Mochi disconnects the clients of this listener), then closes the connections
// still open, such as those that have not sent CONNECT yet, and waits for the ServeHTTP
// calls in flight to return. Calling Close again only calls closeClients again.
func (l *Listener) Close(closeClients listeners.CloseFn) {
	l.mu.Lock()
	first := !l.closed
	l.closed = true
	l.establish = nil
	conns := make([]*conn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()

	l.goingAway.Store(true)
	if first {
		close(l.done)
	}
	if closeClients != nil {
		closeClients(l.id)
	}
	for _, c := range conns {
		_ = c.Close()
	}
	l.handlers.Wait()
}

// ServeHTTP upgrades a WebSocket request and hands the connection to Mochi, returning when
// the client has gone. Mount it on the path clients use, for example mux.Handle("/mqtt", l).
//
// It answers 503 before Serve and after Close, 403 to a browser origin that is neither the
// request's own host nor allowed by Options.AllowedOrigins, and 400 to a request that offers
// subprotocols of which none is "mqtt" or "mqttv3.1". "mqtt" is chosen when offered; a request
// that offers no subprotocol is upgraded without one (some non-browser clients send none).
func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	establish, log, ok := l.admit()
	if !ok {
		http.Error(w, "mqtt websocket listener is not serving", http.StatusServiceUnavailable)
		return
	}
	defer l.handlers.Done()

	if key, ok := l.origins.check(r.Header.Get("Origin"), r.Host); !ok {
		if key == "" {
			key = "(malformed)"
		}
		// Only the normalised scheme://host is logged: never the path, query or cookies.
		log.Warn("websocket origin refused", logKeyOrigin, key, logKeyRemote, r.RemoteAddr)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	if offered := websocket.Subprotocols(r); len(offered) > 0 && !speaksAny(offered) {
		log.Debug("websocket subprotocol refused", logKeyOffered, offered, logKeyRemote, r.RemoteAddr)
		http.Error(w, "unsupported websocket subprotocol; use \"mqtt\"", http.StatusBadRequest)
		return
	}

	ws, err := l.upgrader.Upgrade(w, r, nil) // answers the client itself on failure
	if err != nil {
		log.Debug("websocket upgrade failed", logKeyRemote, r.RemoteAddr, logKeyError, err)
		return
	}
	ws.SetReadLimit(l.readLimit)
	c := newConn(ws, &l.goingAway, newHandshake(r))
	if !l.track(c) {
		_ = c.Close()
		return
	}
	defer l.untrack(c)

	// The client must send CONNECT within the handshake time; Mochi replaces this deadline
	// with the keepalive deadline once CONNECT has been read [MQTT-3.1.2-22].
	_ = c.SetReadDeadline(time.Now().Add(l.handshakeTimeout))
	err = establish(l.id, c)
	_ = c.Close()
	if err != nil {
		level := slog.LevelWarn
		if isDisconnect(err) {
			level = slog.LevelDebug
		}
		log.Log(r.Context(), level, "websocket client ended", logKeyRemote, r.RemoteAddr, logKeyError, err)
	}
}

// admit registers a ServeHTTP call if the listener is serving, returning what it needs.
func (l *Listener) admit() (listeners.EstablishFn, *slog.Logger, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.establish == nil {
		return nil, l.log, false
	}
	l.handlers.Add(1)
	return l.establish, l.log, true
}

// track records an upgraded connection so that Close can close it; it refuses once closed.
func (l *Listener) track(c *conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.conns[c] = struct{}{}
	return true
}

// untrack forgets a connection that ServeHTTP has finished with.
func (l *Listener) untrack(c *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.conns, c)
}

// speaksAny reports whether one of the offered subprotocols is one the listener speaks.
func speaksAny(offered []string) bool {
	for _, o := range offered {
		if slices.Contains(subprotocols, o) {
			return true
		}
	}
	return false
}

// isDisconnect reports whether err is an ordinary end of a client connection rather than
// something worth a warning.
func isDisconnect(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway,
			websocket.CloseNoStatusReceived, websocket.CloseAbnormalClosure)
}
