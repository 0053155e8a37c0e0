package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/roomq/roomq/bridge"
	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/store"
)

// bridgeConfig is one entry of bridges: a link to another broker (package bridge).
type bridgeConfig struct {
	Name              string              `koanf:"name"`
	LocalName         string              `koanf:"local_name"`
	URL               string              `koanf:"url"`
	User              string              `koanf:"user"`
	Password          string              `koanf:"password"`
	PasswordFile      string              `koanf:"password_file"`
	ClientID          string              `koanf:"client_id"`
	CAFile            string              `koanf:"ca_file"`
	LocalUser         string              `koanf:"local_user"`
	LocalPassword     string              `koanf:"local_password"`
	LocalPasswordFile string              `koanf:"local_password_file"`
	Topics            []bridgeTopicConfig `koanf:"topics"`
	Rooms             []bridgeRoomConfig  `koanf:"rooms"`
}

// bridgeTopicConfig maps a prefix of plain topics.
type bridgeTopicConfig struct {
	Local     string `koanf:"local"`
	Remote    string `koanf:"remote"`
	Direction string `koanf:"direction"`
	QoS       int    `koanf:"qos"`
}

// bridgeRoomConfig maps a room.
type bridgeRoomConfig struct {
	Local     string `koanf:"local"`
	Remote    string `koanf:"remote"`
	Direction string `koanf:"direction"`
}

// bridgeSetup is a checked bridge: its configuration and its credentials at this broker.
type bridgeSetup struct {
	cfg           bridge.Config
	localPassword []byte
}

// bridges checks the bridges section and returns the bridges to run.
func (c config) bridges(ps *problems) []bridgeSetup {
	var out []bridgeSetup
	names := map[string]bool{}
	for i, bc := range c.Bridges {
		key := fmt.Sprintf("bridges[%d]", i)
		n := len(*ps)
		password := secretValue(ps, key+".password", bc.Password, bc.PasswordFile)
		localPassword := secretValue(ps, key+".local_password", bc.LocalPassword, bc.LocalPasswordFile)
		localName := bc.LocalName
		if localName == "" {
			localName = c.InstanceID
		}
		if localName == "" {
			ps.addf(key+".local_name", "required (this broker's name on the link), or set instance_id")
		}
		bcfg := bridge.Config{
			Name: bc.Name, LocalName: localName, URL: bc.URL, User: bc.User, Password: password,
			ClientID: bc.ClientID, LocalUser: bc.LocalUser,
		}
		if bc.CAFile != "" {
			pem, err := os.ReadFile(bc.CAFile)
			pool := x509.NewCertPool()
			switch {
			case err != nil:
				ps.addf(key+".ca_file", "%v", err)
			case !pool.AppendCertsFromPEM(pem):
				ps.addf(key+".ca_file", "%s holds no PEM certificate", bc.CAFile)
			}
			bcfg.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		for j, t := range bc.Topics {
			if t.QoS < 0 || t.QoS > 1 {
				ps.addf(fmt.Sprintf("%s.topics[%d].qos", key, j), "%d: want 0 or 1", t.QoS)
				continue
			}
			bcfg.Topics = append(bcfg.Topics, bridge.TopicMapping{Local: t.Local, Remote: t.Remote, Direction: bridge.Direction(t.Direction), QoS: byte(t.QoS)})
		}
		for _, r := range bc.Rooms {
			bcfg.Rooms = append(bcfg.Rooms, bridge.RoomMapping{Local: r.Local, Remote: r.Remote, Direction: bridge.Direction(r.Direction)})
		}
		if names[bc.Name] {
			ps.addf(key+".name", "%q names two bridges", bc.Name)
		}
		names[bc.Name] = true
		if localName != "" {
			if err := bcfg.Check(); err != nil {
				ps.addf(key, "%v", err)
			}
		}
		if len(bcfg.Topics) > 0 && c.MQTT.Addr == "" {
			ps.addf(key+".topics", "plain topics need mqtt.addr: the bridge connects to this broker there")
		}
		if len(*ps) == n {
			out = append(out, bridgeSetup{cfg: bcfg, localPassword: localPassword})
		}
	}
	return out
}

// secretValue returns the value of a key that may instead be read from a file (key_file),
// without the trailing newline.
func secretValue(ps *problems, key, value, file string) []byte {
	switch {
	case value != "" && file != "":
		ps.addf(key+", "+key+"_file", "set one of them, not both")
	case file != "":
		data, err := os.ReadFile(file)
		if err != nil {
			ps.addf(key+"_file", "%v", err)
			return nil
		}
		return bytes.TrimRight(data, "\r\n")
	case value != "":
		return []byte(value)
	}
	return nil
}

// localMQTTURL returns the URL at which the bridges reach this broker's MQTT listener.
func localMQTTURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "tcp://" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "tcp://" + net.JoinHostPort(host, port)
}

// startBridges runs the bridges of setups on b until the returned stop is called; stop waits
// for them to end.
func startBridges(setups []bridgeSetup, b *broker.Broker, feed store.Feed, log *slog.Logger) (bridges []*bridge.Bridge, stop func(), err error) {
	for _, s := range setups {
		br, err := bridge.New(bridge.Options{
			Config: s.cfg, Rooms: b.Rooms(), Poster: b.Commands(), Feed: feed,
			Local:  bridge.LocalMQTT{URL: localMQTTURL(b.MQTTAddr()), User: s.cfg.LocalUser, Password: s.localPassword},
			Logger: log,
		})
		if err != nil {
			return nil, nil, err
		}
		bridges = append(bridges, br)
	}
	if len(bridges) > 0 {
		b.SetBridgeState(func() any { return bridgeStates(bridges) })
		if reg := b.Metrics().Registry(); reg != nil {
			if err := reg.Register(newBridgeCollector(bridges)); err != nil {
				return nil, nil, fmt.Errorf("bridge metrics: %w", err)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, br := range bridges {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := br.Run(ctx); err != nil {
				log.Error("bridge stopped", logKeyBridge, br.Name(), logKeyError, err)
			}
		}()
		log.Info("bridge started", logKeyBridge, br.Name())
	}
	return bridges, func() {
		cancel()
		wg.Wait() // Run returns soon after its context ends
	}, nil
}

// Log keys of the bridges.
const (
	logKeyBridge = "bridge"
	logKeyError  = "error"
)

// bridgeStates returns the state of every bridge, for GET /api/bridges.
func bridgeStates(bridges []*bridge.Bridge) []bridge.Status {
	out := make([]bridge.Status, len(bridges))
	for i, br := range bridges {
		out[i] = br.Status()
	}
	return out
}

// bridgeCollector reports the bridges' link state to Prometheus, read from their state at
// each scrape.
type bridgeCollector struct {
	bridges                                   []*bridge.Bridge
	up, queued, messages, dropped, connection *prometheus.Desc
}

func newBridgeCollector(bridges []*bridge.Bridge) *bridgeCollector {
	label := []string{"bridge"}
	return &bridgeCollector{
		bridges: bridges,
		up:      prometheus.NewDesc("roomq_bridge_connected", "1 while the bridge's link to the far side is up.", label, nil),
		queued:  prometheus.NewDesc("roomq_bridge_queued", "Plain messages waiting for the far side.", label, nil),
		messages: prometheus.NewDesc("roomq_bridge_messages_total",
			"Messages carried by the bridge, by direction (in: to this broker, out: to the far side).", []string{"bridge", "direction"}, nil),
		dropped:    prometheus.NewDesc("roomq_bridge_dropped_total", "Messages the bridge gave up (refused, or a full queue).", label, nil),
		connection: prometheus.NewDesc("roomq_bridge_connections_total", "Connections the bridge made to the far side.", label, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *bridgeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.queued, c.messages, c.dropped, c.connection} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *bridgeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, br := range c.bridges {
		s := br.Status()
		up := 0.0
		if s.Connected {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, s.Name)
		ch <- prometheus.MustNewConstMetric(c.queued, prometheus.GaugeValue, float64(s.Queued), s.Name)
		ch <- prometheus.MustNewConstMetric(c.messages, prometheus.CounterValue, float64(s.MessagesIn), s.Name, "in")
		ch <- prometheus.MustNewConstMetric(c.messages, prometheus.CounterValue, float64(s.MessagesOut), s.Name, "out")
		ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.Dropped), s.Name)
		ch <- prometheus.MustNewConstMetric(c.connection, prometheus.CounterValue, float64(s.Connections), s.Name)
	}
}
