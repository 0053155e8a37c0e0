package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/client"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/internal/tlstest"
)

// The client speaks MQTT over TCP, TLS, WebSocket and secure WebSocket.
func TestTransports(t *testing.T) {
	cert := tlstest.New(t)
	b := mqtttest.StartBroker(t, func(o *broker.Options) {
		o.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12}
		o.MQTTTLSAddr = "127.0.0.1:0"
		o.HTTPTLS = true
	})
	tlsCfg := &tls.Config{RootCAs: cert.Pool, MinVersion: tls.VersionTLS12}
	for _, url := range []string{
		"tcp://" + b.MQTTAddr(),
		"tls://" + b.MQTTTLSAddr(),
		"wss://" + b.HTTPAddr() + "/mqtt",
	} {
		c := connect(t, url, "tina", func(c *client.Config) { c.TLS = tlsCfg })
		socks, err := c.ListOwnSockets(testCtx(t))
		if _, ok := socks[c.ClientID()]; err != nil || !ok {
			t.Errorf("%s: ListOwnSockets = %v, %v", url, socks, err)
		}
	}
}

// Refused credentials end Connect at once instead of retrying.
func TestConnectRefused(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	var attempts []error // written by the callback goroutine, which Connect's Close waits for
	c, err := client.Connect(ctx, client.Config{ServerURLs: []string{tcpURL(b)}, User: "", Logger: mqtttest.TestLogger(),
		OnConnectError: func(err error) { attempts = append(attempts, err) }})
	if err == nil {
		_ = c.Close(ctx)
		t.Fatal("Connect without a user name succeeded")
	}
	t.Log(err)
	if ctx.Err() != nil || time.Since(start) > timeout/2 {
		t.Fatalf("Connect retried until its deadline: %v", err)
	}
	var ce *autopaho.ConnackError
	if len(attempts) != 1 || !errors.As(attempts[0], &ce) || ce.ReasonCode < 0x80 {
		t.Fatalf("OnConnectError got %v, want one CONNACK refusal", attempts)
	}
	if _, err := client.Connect(ctx, client.Config{ServerURLs: []string{"http://" + b.HTTPAddr()}}); err == nil {
		t.Fatal("Connect accepted an http:// URL")
	}
}

// With NumberConnections each connection has its own client id, ClientID-N; RPCs and rooms
// work on each, and a room resumes across them.
func TestNumberConnections(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	ups := newInbox[struct{}]()
	c := connect(t, tcpURL(b), "gw", func(c *client.Config) {
		c.ClientID = "gw-rooms"
		c.NumberConnections = true
		c.OnConnect = func() { ups.put(struct{}{}) }
	})
	ups.next(t, "first connect")
	pub := connect(t, tcpURL(b), "pub", nil)
	ctx := testCtx(t)
	if id := c.ClientID(); id != "gw-rooms-1" {
		t.Fatalf("ClientID = %q, want gw-rooms-1", id)
	}
	msgs := newInbox[client.Message]()
	if err := c.Join(ctx, "general", msgs.put, nil); err != nil {
		t.Fatal(err)
	}
	if err := pub.SendText(ctx, "general", "one"); err != nil {
		t.Fatal(err)
	}
	if m := msgs.next(t, "first message"); m.ID != 1 {
		t.Fatalf("first message = %+v", m)
	}
	// This connection ends; the next one is gw-rooms-2.
	if err := c.Disconnect(ctx, ""); err != nil && !errors.Is(err, client.ErrNotConnected) {
		t.Fatal(err)
	}
	if err := pub.SendText(ctx, "general", "two"); err != nil {
		t.Fatal(err)
	}
	ups.next(t, "reconnect")
	if m := msgs.next(t, "message sent while away"); m.ID != 2 || m.Text() != "two" {
		t.Fatalf("message after the reconnect = %+v", m)
	}
	if id := c.ClientID(); id != "gw-rooms-2" {
		t.Fatalf("ClientID after a reconnect = %q, want gw-rooms-2", id)
	}
	socks, err := c.ListOwnSockets(ctx)
	if _, ok := socks["gw-rooms-2"]; err != nil || !ok || len(socks) != 1 {
		t.Fatalf("ListOwnSockets after a reconnect = %v, %v", socks, err)
	}
}
