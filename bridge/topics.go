package bridge

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/roomq/roomq/wire"
)

// outMessage is a plain message waiting for the far side.
type outMessage struct {
	topic   string
	payload []byte
	qos     byte
	retain  bool
	props   paho.UserProperties
}

// withOrigin returns props with origin-broker set to name unless it is set already.
func withOrigin(props paho.UserProperties, name string) paho.UserProperties {
	if props.Get(wire.PropOriginBroker) != "" {
		return props
	}
	return append(append(paho.UserProperties(nil), props...), paho.UserProperty{Key: wire.PropOriginBroker, Value: name})
}

// startLocal starts the connection to this broker that carries plain topics, and the
// goroutine that sends the queued ones to the far side; both end with ctx.
func (b *Bridge) startLocal(ctx context.Context, wg *sync.WaitGroup, r *remote) error {
	u, err := url.Parse(b.local.URL)
	if err != nil {
		return fmt.Errorf("%w: bridge %q: local url: %w", ErrConfig, b.cfg.Name, err)
	}
	var subs []paho.SubscribeOptions
	for _, m := range b.cfg.Topics {
		if m.Direction.out() {
			subs = append(subs, paho.SubscribeOptions{Topic: m.Local + "/#", QoS: m.QoS, NoLocal: true, RetainAsPublished: true})
		}
	}
	cfg := b.mqttConfig(u, b.local.User, b.local.Password, b.local.ClientID)
	cfg.TlsCfg = nil
	cfg.OnConnectionUp = func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
		b.mu.Lock()
		b.localUp = true
		b.mu.Unlock()
		if len(subs) == 0 {
			return
		}
		wg.Add(1) // the wait for cm.Done below holds the group open
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, setupTimeout)
			defer cancel()
			if err := subscribe(sctx, cm, nil, subs...); err != nil {
				b.fail(err)
				b.log.Error("bridge: subscribe here", logKeyError, err)
				return
			}
			b.mu.Lock()
			b.localSubs = b.localUp
			b.mu.Unlock()
		}()
	}
	cfg.OnConnectionDown = func() bool {
		b.mu.Lock()
		b.localUp = false
		b.localSubs = len(subs) == 0
		b.mu.Unlock()
		return ctx.Err() == nil
	}
	cfg.OnConnectError = func(err error) {
		b.fail(fmt.Errorf("connect here (%s): %w", b.local.URL, err))
		b.log.Warn("bridge: connect to this broker failed", logKeyURL, b.local.URL, logKeyError, err)
	}
	cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
		b.fromLocal(pr.Packet)
		return true, nil
	}}
	connCtx, stop := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(connCtx, cfg)
	if err != nil {
		stop()
		return fmt.Errorf("bridge %q: local connection: %w", b.cfg.Name, err)
	}
	b.mu.Lock()
	b.localCM = cm
	b.mu.Unlock()
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer stop()
		<-ctx.Done()
		dctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		_ = cm.Disconnect(dctx)
		stop()
		<-cm.Done()
	}()
	go func() {
		defer wg.Done()
		b.sendQueued(ctx, r)
	}()
	return nil
}

// fromLocal queues a plain message of this broker for the far side, unless it came from
// there. A full queue drops it.
func (b *Bridge) fromLocal(p *paho.Publish) {
	var props paho.UserProperties
	if p.Properties != nil {
		props = p.Properties.User
	}
	if props.Get(wire.PropOriginBroker) == b.cfg.Name {
		return // bridged in from the far side
	}
	for _, m := range b.cfg.Topics {
		if !m.Direction.out() {
			continue
		}
		topic, ok := rewrite(p.Topic, m.Local, m.Remote)
		if !ok {
			continue
		}
		msg := outMessage{topic: topic, payload: p.Payload, qos: min(p.QoS, m.QoS), retain: p.Retain, props: withOrigin(props, b.cfg.LocalName)}
		select {
		case b.queue <- msg:
		default:
			if b.dropped.Add(1) == 1 || b.dropped.Load()%1000 == 0 {
				b.log.Warn("bridge: queue for the far side full; dropping", logKeyTopic, p.Topic, "dropped", b.dropped.Load())
			}
		}
		return
	}
}

// sendQueued publishes the queued plain messages to the far side, in order, each until the
// far side took it (or refused it), until ctx ends.
func (b *Bridge) sendQueued(ctx context.Context, r *remote) {
	for {
		var msg outMessage
		select {
		case msg = <-b.queue:
		case <-ctx.Done():
			return
		}
		for {
			sctx, err := r.waitSession(ctx)
			if err != nil {
				return
			}
			// Bounded by the connection: a PUBACK lost with it must not hold the queue.
			pr, err := r.cm.Publish(sctx, &paho.Publish{
				Topic: msg.topic, QoS: msg.qos, Retain: msg.retain, Payload: msg.payload,
				Properties: &paho.PublishProperties{User: msg.props},
			})
			if pr != nil && pr.ReasonCode >= 0x80 {
				b.dropped.Add(1)
				b.log.Warn("bridge: plain message refused by the far side; dropped", logKeyTopic, msg.topic, "reason", pr.ReasonCode)
				break
			}
			if err == nil {
				b.out.Add(1)
				break
			}
			if ctx.Err() != nil {
				return
			}
			b.fail(err)
			b.log.Info("bridge: publish failed; trying again after reconnect", logKeyTopic, msg.topic, logKeyError, err)
			select { // the connection may still be up; do not spin
			case <-sctx.Done():
			case <-ctx.Done():
				return
			case <-time.After(b.cfg.ReconnectMin):
			}
		}
	}
}

// toLocal publishes a plain message of the far side here, unless it came from here.
func (b *Bridge) toLocal(ctx context.Context, p *paho.Publish) {
	var props paho.UserProperties
	if p.Properties != nil {
		props = p.Properties.User
	}
	if props.Get(wire.PropOriginBroker) == b.cfg.LocalName {
		return
	}
	for _, m := range b.cfg.Topics {
		if !m.Direction.in() {
			continue
		}
		topic, ok := rewrite(p.Topic, m.Remote, m.Local)
		if !ok {
			continue
		}
		b.mu.Lock()
		cm := b.localCM
		b.mu.Unlock()
		if cm == nil {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, localTimeout)
		pr, err := cm.Publish(pctx, &paho.Publish{
			Topic: topic, QoS: min(p.QoS, m.QoS), Retain: p.Retain, Payload: p.Payload,
			Properties: &paho.PublishProperties{User: withOrigin(props, b.cfg.Name)},
		})
		cancel()
		switch {
		case pr != nil && pr.ReasonCode >= 0x80:
			b.dropped.Add(1)
			b.log.Warn("bridge: plain message refused here; dropped", logKeyTopic, topic, "reason", pr.ReasonCode)
		case err != nil:
			b.dropped.Add(1)
			b.fail(err)
			b.log.Warn("bridge: plain message not published here; dropped", logKeyTopic, topic, logKeyError, err)
		default:
			b.in.Add(1)
		}
		return
	}
}

// hasInTopics reports whether a plain topic mapping carries messages from the far side.
func (b *Bridge) hasInTopics() bool {
	for _, m := range b.cfg.Topics {
		if m.Direction.in() {
			return true
		}
	}
	return false
}
