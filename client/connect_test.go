package client_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

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
	c, err := client.Connect(ctx, client.Config{ServerURLs: []string{tcpURL(b)}, User: "", Logger: mqtttest.TestLogger()})
	if err == nil {
		_ = c.Close(ctx)
		t.Fatal("Connect without a user name succeeded")
	}
	t.Log(err)
	if ctx.Err() != nil || time.Since(start) > timeout/2 {
		t.Fatalf("Connect retried until its deadline: %v", err)
	}
	if _, err := client.Connect(ctx, client.Config{ServerURLs: []string{"http://" + b.HTTPAddr()}}); err == nil {
		t.Fatal("Connect accepted an http:// URL")
	}
}
