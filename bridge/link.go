package bridge

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/bits"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/wire"
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

// remote is the bridge's connection to the far side.
type remote struct {
	b   *Bridge
	cm  *autopaho.ConnectionManager
	ctx context.Context // ends with Run
	wg  *sync.WaitGroup

	corr atomic.Uint64

	mu      sync.Mutex
	session context.CancelFunc // ends the current connection's session
	// sessCtx is the current connection's context, nil before the first; sessChanged is
	// closed, and replaced, when a connection comes up.
	sessCtx     context.Context
	sessChanged chan struct{}
	replies     string // response topic of the current connection
	pending     map[string]chan json.RawMessage
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

// startRemote starts the connection to the far side; a goroutine tracked by wg closes it
// when ctx ends.
func (b *Bridge) startRemote(ctx context.Context, wg *sync.WaitGroup) (*remote, error) {
	u, err := url.Parse(b.cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: bridge %q: url: %w", ErrConfig, b.cfg.Name, err)
	}
	r := &remote{b: b, ctx: ctx, wg: wg, pending: map[string]chan json.RawMessage{}, sessChanged: make(chan struct{})}
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
func (r *remote) up(cm *autopaho.ConnectionManager, ca *paho.Connack) {
	b := r.b
	replies := ""
	if ca.Properties != nil && ca.Properties.ResponseInfo != "" {
		replies = ca.Properties.ResponseInfo
	} else if b.cfg.User != "" {
		replies = wire.UserNamespace(b.cfg.User) + "replies/" + b.cfg.ClientID
	}
	ctx, cancel := context.WithCancel(r.ctx)
	r.mu.Lock()
	if r.session != nil {
		r.session()
	}
	r.session, r.replies, r.sessCtx = cancel, replies, ctx
	close(r.sessChanged)
	r.sessChanged = make(chan struct{})
	r.mu.Unlock()
	b.mu.Lock()
	b.connected, b.since = true, time.Now()
	b.connections++
	b.mu.Unlock()
	b.log.Info("bridge connected", logKeyURL, b.cfg.URL)
	r.wg.Add(1) // the wait for cm.Done in startRemote holds the group open
	go func() {
		defer r.wg.Done()
		r.setup(ctx, cm, replies)
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
	pending := r.pending
	r.pending = map[string]chan json.RawMessage{}
	r.mu.Unlock()
	for _, ch := range pending {
		close(ch)
	}
	b := r.b
	b.mu.Lock()
	b.connected = false
	b.remoteSubs = !b.hasInTopics()
	b.mu.Unlock()
	for _, l := range b.links {
		l.mu.Lock()
		l.joined = false
		l.mu.Unlock()
	}
	if r.ctx.Err() != nil {
		return false
	}
	b.log.Warn("bridge connection lost; reconnecting", logKeyURL, b.cfg.URL)
	return true
}

// setup subscribes what the connection needs: RPC replies and the in direction of plain
// topics, then each room mapping.
func (r *remote) setup(ctx context.Context, cm *autopaho.ConnectionManager, replies string) {
	b := r.b
	sctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	var subs []paho.SubscribeOptions
	if len(b.links) > 0 && replies != "" {
		subs = append(subs, paho.SubscribeOptions{Topic: replies, QoS: 1})
	}
	for _, m := range b.cfg.Topics {
		if m.Direction.in() {
			subs = append(subs, paho.SubscribeOptions{Topic: m.Remote + "/#", QoS: m.QoS, NoLocal: true, RetainAsPublished: true})
		}
	}
	if len(subs) > 0 {
		if err := subscribe(sctx, cm, nil, subs...); err != nil {
			b.fail(err)
			b.log.Error("bridge subscribe", logKeyError, err)
			if ctx.Err() != nil {
				return
			}
		} else {
			b.mu.Lock()
			b.remoteSubs = ctx.Err() == nil
			b.mu.Unlock()
		}
	}
	for _, l := range b.links {
		// Tried again while the connection is up: a refusal may be passing (the far side
		// still cleaning up after the previous connection, say).
		for attempt := 1; ; attempt++ {
			actx, cancel := context.WithTimeout(ctx, setupTimeout)
			err := l.setup(ctx, actx, r, cm)
			cancel()
			if err == nil || ctx.Err() != nil {
				break
			}
			b.fail(err)
			b.log.Warn("bridge room setup failed; trying again", logKeyRoom, l.m.Local, logKeyError, err)
			select {
			case <-time.After(b.backoff(attempt)):
			case <-ctx.Done():
				return
			}
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

// onPublish routes a message from the far side: an RPC reply, a room message or a plain
// message to bridge in. It runs on paho's goroutine, one message at a time.
func (r *remote) onPublish(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	r.mu.Lock()
	replies := r.replies
	r.mu.Unlock()
	if replies != "" && p.Topic == replies {
		r.reply(p)
		return true, nil
	}
	if t := wire.ParseTopic(p.Topic); t.Kind == wire.TopicRoom {
		for _, l := range r.b.links {
			if l.m.Remote == t.Name {
				l.fromRemote(r.ctx, p)
			}
		}
		return true, nil
	}
	r.b.toLocal(r.ctx, p)
	return true, nil
}

// rpcReply is the payload of a roomq RPC response.
type rpcReply struct {
	Result json.RawMessage `json:"result"`
	Error  *wire.Error     `json:"error"`
}

// reply hands an RPC response to its caller.
func (r *remote) reply(p *paho.Publish) {
	if p.Properties == nil {
		return
	}
	key := string(p.Properties.CorrelationData)
	r.mu.Lock()
	ch, ok := r.pending[key]
	delete(r.pending, key)
	r.mu.Unlock()
	if ok {
		ch <- p.Payload
		close(ch)
	}
}

// call runs command on the far side's roomq broker with args and decodes its result into
// out.
func (r *remote) call(ctx context.Context, cm *autopaho.ConnectionManager, command string, args, out any) error {
	payload, err := json.Marshal(args)
	if err != nil {
		return fmt.Errorf("%s: %w", command, err)
	}
	key := strconv.FormatUint(r.corr.Add(1), 10)
	ch := make(chan json.RawMessage, 1)
	r.mu.Lock()
	replies := r.replies
	r.pending[key] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, key)
		r.mu.Unlock()
	}()
	if replies == "" {
		return fmt.Errorf("%s: the far side gave no response information and no user is configured", command)
	}
	_, err = cm.Publish(ctx, &paho.Publish{
		Topic: wire.RPCPrefix + command, QoS: 1, Payload: payload,
		Properties: &paho.PublishProperties{ResponseTopic: replies, CorrelationData: []byte(key)},
	})
	if err != nil {
		return fmt.Errorf("%s: %w", command, err)
	}
	select {
	case raw, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: %w", command, ErrNotConnected)
		}
		var rep rpcReply
		if err := json.Unmarshal(raw, &rep); err != nil {
			return fmt.Errorf("%s: bad response: %w", command, err)
		}
		if rep.Error != nil {
			return fmt.Errorf("%s: %w: %s: %s", command, ErrRemote, rep.Error.Code, rep.Error.Message)
		}
		if err := json.Unmarshal(rep.Result, out); err != nil {
			return fmt.Errorf("%s: bad result: %w", command, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", command, ctx.Err())
	}
}
