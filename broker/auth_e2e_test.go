package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/roomq/roomq/acl"
	"github.com/roomq/roomq/broker"
	"github.com/roomq/roomq/internal/mqtttest"
)

// CONNACK codes of authentication refusals [MQTT-3.2.2-6].
const (
	connackBadCredentials     = 0x86 // v5 bad user name or password
	connackUnavailable        = 0x88 // v5 server unavailable
	connack3BadCredentials    = 0x04 // v3.1.1 bad user name or password
	connack3ServerUnavailable = 0x03 // v3.1.1 server unavailable
)

const jwtSecret = "an HS256 secret of 32 bytes, ok!"

// startAuthBroker starts a broker that authenticates with a.
func startAuthBroker(t *testing.T, a acl.Authenticator) *broker.Broker {
	t.Helper()
	return mqtttest.StartBroker(t, func(o *broker.Options) { o.Authenticator = a })
}

// dialV5 connects user with password over MQTT 5 and returns the CONNACK reason code (0 and a
// client on success).
func dialV5(t *testing.T, url, user, password string) (byte, *mqtttest.Client) {
	t.Helper()
	o := mqtttest.Options{URL: url, NoFail: true}
	if password != "" {
		o.Password = []byte(password)
	}
	c := mqtttest.Dial(t, user, o)
	if c.Connack == nil {
		t.Fatalf("%s: no CONNACK", user)
	}
	if c.Connack.ReasonCode != 0 {
		return c.Connack.ReasonCode, nil
	}
	return 0, c
}

// dialV3 connects user with password over MQTT 3.1.1 and returns the CONNACK return code.
func dialV3(t *testing.T, url, user, password string) byte {
	t.Helper()
	o := mqtt3.NewClientOptions().
		AddBroker(url).
		SetClientID(fmt.Sprintf("%s-v3-auth-%d", user, seq.Add(1))).
		SetUsername(user).
		SetPassword(password).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(mqtttest.Timeout)
	c := mqtt3.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(mqtttest.Timeout) {
		t.Fatalf("v3 connect %s: timeout", user)
	}
	if tok.Error() == nil {
		t.Cleanup(func() { c.Disconnect(100) })
	}
	return tok.(*mqtt3.ConnectToken).ReturnCode()
}

var seq atomic.Int64

// expectPost checks that c can post to rooms/general and that the message reaches a listener
// as written by author.
func expectPost(t *testing.T, listener *mqtttest.Client, publish func([]byte) byte, author string) {
	t.Helper()
	body := fmt.Sprintf("hello from %s %d", author, seq.Add(1))
	if code := publish(text(body)); code != 0 {
		t.Fatalf("%s: PUBACK 0x%02x, want 0", author, code)
	}
	for {
		m := decodeRoomMsg(t, listener.Expect("rooms/general"))
		if m.TextMessage == body {
			if m.Author != author {
				t.Errorf("message by %q, want %q", m.Author, author)
			}
			return
		}
	}
}

func TestStaticAuthEndToEnd(t *testing.T) {
	users, err := acl.SetStaticUser(nil, "alice", []byte("alice-pw"), []string{acl.RoleAdmin}, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users, err = acl.SetStaticUser(users, "bob", []byte("bob-pw"), nil, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	a, err := acl.NewStaticAuth(users)
	if err != nil {
		t.Fatal(err)
	}
	b := startAuthBroker(t, a)

	for _, url := range []string{tcpURL(b), wsURL(b)} {
		for _, tc := range []struct{ user, pw string }{{"alice", "bob-pw"}, {"alice", ""}, {"mallory", "alice-pw"}} {
			if code, _ := dialV5(t, url, tc.user, tc.pw); code != connackBadCredentials {
				t.Errorf("v5 %s %s/%q: CONNACK 0x%02x, want 0x86", url, tc.user, tc.pw, code)
			}
			if code := dialV3(t, url, tc.user, tc.pw); code != connack3BadCredentials {
				t.Errorf("v3.1.1 %s %s/%q: CONNACK 0x%02x, want 0x04", url, tc.user, tc.pw, code)
			}
		}
	}

	code, alice := dialV5(t, tcpURL(b), "alice", "alice-pw")
	if code != 0 {
		t.Fatalf("alice: CONNACK 0x%02x", code)
	}
	alice.MustSubscribe("rooms/general", "#") // "#" needs the admin role from the users file
	code, bob := dialV5(t, wsURL(b), "bob", "bob-pw")
	if code != 0 {
		t.Fatalf("bob: CONNACK 0x%02x", code)
	}
	expectPost(t, alice, func(p []byte) byte { return bob.Publish("rooms/general", 1, p, nil) }, "bob")
	if code := dialV3(t, tcpURL(b), "bob", "bob-pw"); code != 0 {
		t.Errorf("v3.1.1 bob: CONNACK 0x%02x", code)
	}
}

// An auth backend that cannot answer gets "server unavailable", so that clients retry, not
// "bad credentials", which would make them give up.
func TestAuthBackendUnavailableEndToEnd(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String() + "/auth"
	_ = ln.Close()

	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)

	for name, opts := range map[string]acl.HTTPOptions{
		"down": {URL: down},
		"slow": {URL: slow.URL, Timeout: 200 * time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			a, err := acl.NewHTTPAuth(opts)
			if err != nil {
				t.Fatal(err)
			}
			b := startAuthBroker(t, a)
			if code, _ := dialV5(t, tcpURL(b), "alice", "pw"); code != connackUnavailable {
				t.Errorf("v5: CONNACK 0x%02x, want 0x88", code)
			}
			if code := dialV3(t, wsURL(b), "alice", "pw"); code != connack3ServerUnavailable {
				t.Errorf("v3.1.1: CONNACK 0x%02x, want 0x03", code)
			}
		})
	}
}

func TestHTTPAuthEndToEnd(t *testing.T) {
	var asked atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		var req acl.HTTPAuthRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch {
		case req.SID == "sid-of-dora" && req.Cookies[acl.SessionCookie] == req.SID:
			_ = json.NewEncoder(w).Encode(acl.HTTPAuthReply{User: "dora"})
		case req.SID == "sid-of-eve" && len(req.Cookies) == 0:
			_ = json.NewEncoder(w).Encode(acl.HTTPAuthReply{User: "eve"})
		case req.Username == "carl" && req.Password == "carl-pw":
			_ = json.NewEncoder(w).Encode(acl.HTTPAuthReply{User: "carl", Roles: []string{acl.RoleAdmin}})
		default:
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer backend.Close()
	a, err := acl.NewHTTPAuth(acl.HTTPOptions{URL: backend.URL})
	if err != nil {
		t.Fatal(err)
	}
	b := startAuthBroker(t, a)

	if code, _ := dialV5(t, tcpURL(b), "carl", "wrong"); code != connackBadCredentials {
		t.Errorf("refused by the backend: CONNACK 0x%02x, want 0x86", code)
	}
	if code := dialV3(t, tcpURL(b), "carl", "wrong"); code != connack3BadCredentials {
		t.Errorf("v3.1.1 refused by the backend: CONNACK 0x%02x, want 0x04", code)
	}
	carl := mqtttest.Dial(t, "carl", mqtttest.Options{URL: tcpURL(b), ClientID: "carl-phone", Password: []byte("carl-pw")})
	carl.MustSubscribe("rooms/general")

	// The hu60 session of a web page reaches the backend, from the cookie or the query.
	dora := dialWS(t, wsURL(b), http.Header{"Cookie": {acl.SessionCookie + "=sid-of-dora; theme=dark"}}, "", nil)
	expectPost(t, carl, dora.publish, "dora")
	eve := dialWS(t, wsURL(b)+"?"+acl.SessionQueryParam+"=sid-of-eve", nil, "", nil)
	expectPost(t, carl, eve.publish, "eve")

	// The same login again (a reconnection, from another port) is answered from the cache.
	before := asked.Load()
	mqtttest.Dial(t, "carl", mqtttest.Options{URL: tcpURL(b), ClientID: "carl-phone", Password: []byte("carl-pw")})
	if asked.Load() != before {
		t.Error("a second identical login asked the backend again")
	}
}

func TestJWTAuthEndToEnd(t *testing.T) {
	a, err := acl.NewJWTAuth(acl.JWTOptions{
		Algorithms: []string{acl.AlgHS256},
		Secret:     []byte(jwtSecret),
		QueryParam: acl.DefaultJWTQueryParam,
		Cookie:     "jwt",
	})
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	b := mqtttest.StartBroker(t, func(o *broker.Options) {
		o.Authenticator = a
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	var signatures []string // of every token used, none of which may be logged
	defer func() {
		if !strings.Contains(logs.String(), "token is expired") {
			t.Error("refusals were not logged with their reason")
		}
		for _, sig := range signatures {
			if strings.Contains(logs.String(), sig) {
				t.Errorf("the broker logged a token")
				return
			}
		}
	}()
	signed := func(secret, sub string, exp time.Duration, roles ...string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": sub, "exp": time.Now().Add(exp).Unix(), "roles": roles,
		}).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		signatures = append(signatures, s[strings.LastIndex(s, ".")+1:])
		return s
	}
	tok := func(sub string, exp time.Duration, roles ...string) string {
		return signed(jwtSecret, sub, exp, roles...)
	}

	// Over TCP the token is the password.
	code, alice := dialV5(t, tcpURL(b), "alice", tok("alice", time.Hour, acl.RoleAdmin))
	if code != 0 {
		t.Fatalf("alice: CONNACK 0x%02x", code)
	}
	alice.MustSubscribe("rooms/general", "#")
	expectPost(t, alice, func(p []byte) byte { return alice.Publish("rooms/general", 1, p, nil) }, "alice")
	for name, c := range map[string]struct{ user, token string }{
		"expired":         {"bob", tok("bob", -time.Hour)},
		"user is not sub": {"bob", tok("alice", time.Hour)},
		"wrong signature": {"bob", signed("another secret of 32 bytes, ok!!", "bob", time.Hour)},
		"no token":        {"bob", ""},
		"garbage":         {"bob", "not-a-token"},
	} {
		if code, _ := dialV5(t, tcpURL(b), c.user, c.token); code != connackBadCredentials {
			t.Errorf("%s: CONNACK 0x%02x, want 0x86", name, code)
		}
		if code := dialV3(t, tcpURL(b), c.user, c.token); code != connack3BadCredentials {
			t.Errorf("v3.1.1 %s: CONNACK 0x%02x, want 0x04", name, code)
		}
	}
	if code := dialV3(t, tcpURL(b), "bob", tok("bob", time.Hour)); code != 0 {
		t.Errorf("v3.1.1 bob: CONNACK 0x%02x", code)
	}

	// Over WebSocket the token may come in the query or a cookie; the user is its sub.
	bob := mqtttest.Dial(t, "bob", mqtttest.Options{URL: wsURL(b) + "?" + url.Values{"token": {tok("bob", time.Hour)}}.Encode()})
	expectPost(t, alice, func(p []byte) byte { return bob.Publish("rooms/general", 1, p, nil) }, "bob")
	carol := dialWS(t, wsURL(b), http.Header{"Cookie": {"jwt=" + tok("carol", time.Hour)}}, "", nil)
	expectPost(t, alice, carol.publish, "carol")

	for name, c := range map[string]struct {
		url    string
		header http.Header
		user   string
	}{
		"expired query":          {wsURL(b) + "?token=" + tok("dave", -time.Hour), nil, ""},
		"query for another":      {wsURL(b) + "?token=" + tok("dave", time.Hour), nil, "erin"},
		"cookie of another name": {wsURL(b), http.Header{"Cookie": {"token=" + tok("dave", time.Hour)}}, ""},
	} {
		var code byte
		dialWS(t, c.url, c.header, c.user, &code)
		if code != connackBadCredentials {
			t.Errorf("%s: CONNACK 0x%02x, want 0x86", name, code)
		}
	}
}

// lockedBuffer is a bytes.Buffer for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// wsClient is an MQTT 5 client over a WebSocket whose upgrade request carries chosen headers.
type wsClient struct {
	t *testing.T
	c *paho.Client
}

// dialWS connects over WebSocket with header on the upgrade request and user (may be "") in
// CONNECT. With refused nil it fails the test unless the broker accepts; otherwise it stores
// the CONNACK code in *refused and returns nil.
func dialWS(t *testing.T, wsURL string, header http.Header, user string, refused *byte) *wsClient {
	t.Helper()
	ws := mqtttest.DialWS(t, wsURL, header)
	c := paho.NewClient(paho.ClientConfig{
		Conn:          packets.NewThreadSafeConn(ws),
		PacketTimeout: mqtttest.Timeout,
	})
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	ack, err := c.Connect(ctx, &paho.Connect{
		ClientID:     fmt.Sprintf("ws-auth-%d", seq.Add(1)),
		KeepAlive:    30,
		CleanStart:   true,
		Username:     user,
		UsernameFlag: user != "",
	})
	if refused != nil {
		if ack == nil {
			t.Fatalf("no CONNACK: %v", err)
		}
		*refused = ack.ReasonCode
		_ = ws.Close()
		return nil
	}
	if err != nil {
		t.Fatalf("connect over websocket: %v (connack %+v)", err, ack)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return &wsClient{t: t, c: c}
}

// publish posts payload to rooms/general at QoS 1 and returns the PUBACK reason code.
func (w *wsClient) publish(payload []byte) byte {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	pr, err := w.c.Publish(ctx, &paho.Publish{Topic: "rooms/general", QoS: 1, Payload: payload})
	if pr == nil {
		w.t.Fatalf("publish: %v", err)
	}
	return pr.ReasonCode
}
