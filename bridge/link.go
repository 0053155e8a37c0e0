package bridge

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/bits"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// Timeouts of the link.
const (
	connectTimeout = 10 * time.Second
	setupTimeout   = 30 * time.Second
	closeTimeout   = 2 * time.Second
	// localTimeout bounds one publish or post on this broker, made while the far side's
	// messages wait.
	localTimeout = 10 * time.Second
)

// remote is the bridge's connection to the far side for plain topics. It is a bare MQTT 5
// connection (autopaho), not a roomq client: plain topics are bridged to any MQTT broker.
type remote struct {
	b   *Bridge
	cm  *autopaho.ConnectionManager
	ctx context.Context // ends with Run
	wg  *sync.WaitGroup

	mu      sync.Mutex
	session context.CancelFunc // ends the current connection's session
	// sessCtx is the current connection's context, nil before the first; sessChanged is
	// closed, and replaced, when a connection comes up.
	sessCtx     context.Context
	sessChanged chan struct{}
}

// mqttConfig returns the autopaho configuration shared by the bridge's connections. Each
// connection gets the client id clientID-N, N counting the connections: a new connection
// never takes over the previous one's client id, whose clean-up on the far side, when it runs
// late, could end the new connection's subscriptions (seen with Mochi).
func (b *Bridge) mqttConfig(u *url.URL, user string, password []byte, clientID string) autopaho.ClientConfig {
	var n atomic.Uint64
	return autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		TlsCfg:                        b.cfg.TLS,
		KeepAlive:                     uint16(min(b.cfg.KeepAlive/time.Second, 65535)),
		CleanStartOnInitialConnection: true,
		ConnectTimeout:                connectTimeout,
		ReconnectBackoff:              b.backoff,
		ConnectUsername:               user,
		ConnectPassword:               password,
		ConnectPacketBuilder: func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			// Every connection starts clean: rooms resume by id, not through MQTT sessions.
			cp.CleanStart = true
			cp.ClientID = clientID + "-" + strconv.FormatUint(n.Add(1), 10)
			if cp.Properties == nil {
				cp.Properties = &paho.ConnectProperties{}
			}
			cp.Properties.RequestResponseInfo = true
			return cp, nil
		},
		ClientConfig: paho.ClientConfig{ClientID: clientID},
	}
}

// backoff is the delay before connection attempt n (0 after a drop): none for the first, then
// doubling from ReconnectMin up to ReconnectMax, less up to a quarter of jitter.
func (b *Bridge) backoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	d := b.cfg.ReconnectMax
	if shift := n - 1; shift < bits.Len64(uint64(d)) {
		if e := b.cfg.ReconnectMin << shift; e > 0 && e < d {
			d = e
		}
	}
	var r [1]byte
	_, _ = rand.Read(r[:])
	return d - d/4*time.Duration(r[0])/255
}

// startRemote starts the connection to the far side for plain topics; a goroutine tracked by
// wg closes it when ctx ends.
func (b *Bridge) startRemote(ctx context.Context, wg *sync.WaitGroup) (*remote, error) {
	u, err := url.Parse(b.cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: bridge %q: url: %w", ErrConfig, b.cfg.Name, err)
	}
	r := &remote{b: b, ctx: ctx, wg: wg, sessChanged: make(chan struct{})}
	cfg := b.mqttConfig(u, b.cfg.User, b.cfg.Password, b.cfg.ClientID)
	cfg.OnConnectionUp = r.up
	cfg.OnConnectionDown = r.down
	cfg.OnConnectError = func(err error) {
		b.fail(fmt.Errorf("connect to %s: %w", b.cfg.URL, err))
		b.log.Info("bridge connect attempt failed", logKeyURL, b.cfg.URL, logKeyError, err)
	}
	cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){r.onPublish}
	cfg.OnClientError = func(err error) {
		b.fail(err)
		b.log.Info("bridge connection error", logKeyError, err)
	}
	cfg.OnServerDisconnect = func(d *paho.Disconnect) {
		b.log.Info("far side disconnected the bridge", "reason", d.ReasonCode)
	}
	connCtx, stop := context.WithCancel(context.Background()) // ends after the DISCONNECT below
	cm, err := autopaho.NewConnection(connCtx, cfg)
	if err != nil {
		stop()
		return nil, fmt.Errorf("bridge %q: %w", b.cfg.Name, err)
	}
	r.cm = cm
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer stop()
		<-ctx.Done()
		dctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		_ = cm.Disconnect(dctx) // not connected: nothing to say goodbye to
		stop()
		<-cm.Done()
	}()
	return r, nil
}

// up is autopaho's callback for a new connection: it starts the connection's session.
func (r *remote) up(cm *autopaho.ConnectionManager, _ *paho.Connack) {
	b := r.b
	ctx, cancel := context.WithCancel(r.ctx)
	r.mu.Lock()
	if r.session != nil {
		r.session()
	}
	r.session, r.sessCtx = cancel, ctx
	close(r.sessChanged)
	r.sessChanged = make(chan struct{})
	r.mu.Unlock()
	b.linkUp(&b.topicsUp)
	b.log.Info("bridge connected (plain topics)", logKeyURL, b.cfg.URL)
	r.wg.Add(1) // the wait for cm.Done in startRemote holds the group open
	go func() {
		defer r.wg.Done()
		r.setup(ctx, cm)
	}()
}

// waitSession returns the context of the connection that is up, waiting for one until ctx
// ends.
func (r *remote) waitSession(ctx context.Context) (context.Context, error) {
	for {
		r.mu.Lock()
		s, changed := r.sessCtx, r.sessChanged
		r.mu.Unlock()
		if s != nil && s.Err() == nil {
			return s, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// down is autopaho's callback for a lost connection; it returns true to reconnect.
func (r *remote) down() bool {
	r.mu.Lock()
	if r.session != nil {
		r.session()
		r.session = nil
	}
	r.mu.Unlock()
	b := r.b
	b.mu.Lock()
	b.topicsUp = false
	b.remoteSubs = !b.hasInTopics()
	b.mu.Unlock()
	if r.ctx.Err() != nil {
		return false
	}
	b.log.Warn("bridge connection lost; reconnecting", logKeyURL, b.cfg.URL)
	return true
}

// setup subscribes the in direction of plain topics on a new connection.
func (r *remote) setup(ctx context.Context, cm *autopaho.ConnectionManager) {
	b := r.b
	sctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	var subs []paho.SubscribeOptions
	for _, m := range b.cfg.Topics {
		if m.Direction.in() {
			subs = append(subs, paho.SubscribeOptions{Topic: m.Remote + "/#", QoS: m.QoS, NoLocal: true, RetainAsPublished: true})
		}
	}
	if len(subs) > 0 {
		if err := subscribe(sctx, cm, nil, subs...); err != nil {
			b.fail(err)
			b.log.Error("bridge subscribe", logKeyError, err)
		} else {
			b.mu.Lock()
			b.remoteSubs = ctx.Err() == nil
			b.mu.Unlock()
		}
	}
}

// subscribe subscribes subs with user properties props; a refused filter is an error.
func subscribe(ctx context.Context, cm *autopaho.ConnectionManager, props paho.UserProperties, subs ...paho.SubscribeOptions) error {
	s := &paho.Subscribe{Subscriptions: subs}
	if props != nil {
		s.Properties = &paho.SubscribeProperties{User: props}
	}
	sa, err := cm.Subscribe(ctx, s)
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", subs[0].Topic, err)
	}
	for i, code := range sa.Reasons {
		if code >= 0x80 && i < len(subs) {
			return fmt.Errorf("subscribe %s: refused with reason code %#x", subs[i].Topic, code)
		}
	}
	return nil
}

// onPublish routes a plain message from the far side to this broker. It runs on paho's
// goroutine, one message at a time.
func (r *remote) onPublish(pr paho.PublishReceived) (bool, error) {
	r.b.toLocal(r.ctx, pr.Packet)
	return true, nil
}
