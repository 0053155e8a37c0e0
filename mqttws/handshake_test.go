package mqttws_test

import (
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/roomq/roomq/mqttws"
)

// handshakeSeen is what a hook found on a client's connection at CONNECT.
type handshakeSeen struct {
	ok      bool
	cookies map[string]string
	query   url.Values
}

// handshakeHook reports the Handshake of each connecting client, as the broker's auth hook
// reads it.
type handshakeHook struct {
	mqtt.HookBase
	seen chan handshakeSeen
}

func (h *handshakeHook) ID() string { return "test-handshake" }

func (h *handshakeHook) Provides(b byte) bool { return b == mqtt.OnConnect }

func (h *handshakeHook) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	hs, ok := cl.Net.Conn.(mqttws.Handshake)
	s := handshakeSeen{ok: ok}
	if ok {
		s.cookies, s.query = hs.Cookies(), hs.Query()
		// The caller owns what it got: changing it changes nothing for the next caller.
		s.cookies["injected"] = "x"
		s.query.Set("injected", "x")
		for _, v := range s.query {
			v[0] = "changed"
		}
		s.cookies, s.query = hs.Cookies(), hs.Query()
	}
	h.seen <- s
	return nil
}

func TestHandshakeReachesMochi(t *testing.T) {
	b := startBroker(t, mqttws.Options{})
	hook := &handshakeHook{seen: make(chan handshakeSeen, 1)}
	if err := b.srv.AddHook(hook, nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name        string
		query       string
		cookie      []string
		wantCookies map[string]string
		wantQuery   url.Values
	}{
		{
			name:        "cookies and query",
			query:       "?token=abc&_sid=s1&_sid=s2&empty=",
			cookie:      []string{"hu60_sid=sid-1; theme=dark", "hu60_sid=shadowed"},
			wantCookies: map[string]string{"hu60_sid": "sid-1", "theme": "dark"},
			wantQuery:   url.Values{"token": {"abc"}, "_sid": {"s1", "s2"}, "empty": {""}},
		},
		{
			name:        "nothing",
			wantCookies: map[string]string{},
			wantQuery:   url.Values{},
		},
		{
			name:        "escaped query, quoted cookie",
			query:       "?token=a%2Bb%3D%3D",
			cookie:      []string{`jwt="x.y.z"`},
			wantCookies: map[string]string{"jwt": "x.y.z"},
			wantQuery:   url.Values{"token": {"a+b=="}},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: timeout}
			header := http.Header{}
			for _, c := range tc.cookie {
				header.Add("Cookie", c)
			}
			ws, resp, err := d.Dial(b.url+tc.query, header)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			_ = resp.Body.Close()
			defer ws.Close()
			rawConnect(t, ws, "hs-"+string(rune('a'+i)))
			select {
			case s := <-hook.seen:
				if !s.ok {
					t.Fatal("the connection does not implement mqttws.Handshake")
				}
				if !reflect.DeepEqual(s.cookies, tc.wantCookies) {
					t.Errorf("Cookies() = %v, want %v", s.cookies, tc.wantCookies)
				}
				if !reflect.DeepEqual(s.query, tc.wantQuery) {
					t.Errorf("Query() = %v, want %v", s.query, tc.wantQuery)
				}
			case <-time.After(timeout):
				t.Fatal("OnConnect not called")
			}
		})
	}
}
