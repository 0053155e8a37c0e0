package broker_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/gorilla/websocket"

	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/internal/mqtttest"
	"github.com/roomq/roomq/internal/tlstest"
)

func tlsPaho(t *testing.T, conn net.Conn, user string) *paho.Client {
	t.Helper()
	c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn)})
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: user, Username: user, UsernameFlag: true, CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatalf("connect over TLS: %v", err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

// MQTT over TLS (:8883) and MQTT over secure WebSocket work with the configured certificate;
// a plain client cannot talk to the TLS port.
func TestTLSListeners(t *testing.T) {
	cert := tlstest.New(t)
	b := mqtttest.StartBroker(t, func(o *broker.Options) {
		o.TLS = &tls.Config{Certificates: []tls.Certificate{cert.TLS}, MinVersion: tls.VersionTLS12}
		o.MQTTTLSAddr = "127.0.0.1:0"
		o.HTTPTLS = true
	})
	client := &tls.Config{RootCAs: cert.Pool, MinVersion: tls.VersionTLS12}

	conn, err := tls.Dial("tcp", b.MQTTTLSAddr(), client)
	if err != nil {
		t.Fatal(err)
	}
	c := tlsPaho(t, conn, "tina")
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	if _, err := c.Publish(ctx, &paho.Publish{Topic: "rooms/general", QoS: 1, Payload: text("over tls")}); err != nil {
		t.Fatal(err)
	}

	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, TLSClientConfig: client, HandshakeTimeout: mqtttest.Timeout}
	ws, resp, err := d.Dial("wss://"+b.HTTPAddr()+"/mqtt", http.Header{})
	if err != nil {
		t.Fatalf("wss: %v", err)
	}
	_ = resp.Body.Close()
	ws.Close()

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: client}, Timeout: mqtttest.Timeout}
	r, err := hc.Get("https://" + b.HTTPAddr() + "/healthz")
	if err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("https /healthz: %v %v", r, err)
	}
	_ = r.Body.Close()

	// A plain MQTT CONNECT to the TLS port gets no CONNACK.
	plain, err := net.DialTimeout("tcp", b.MQTTTLSAddr(), mqtttest.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	_, _ = plain.Write(connectPacket("p", "p", 30, "devices/p/status", "x"))
	_ = plain.SetReadDeadline(time.Now().Add(mqtttest.Timeout))
	buf := make([]byte, 4)
	if n, _ := plain.Read(buf); n >= 2 && buf[0] == 0x20 {
		t.Error("a plain client got a CONNACK on the TLS port")
	}
}
