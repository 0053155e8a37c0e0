package mqttws

import (
	"maps"
	"net/http"
	"net/url"
)

// Handshake is what a WebSocket client presented in its HTTP upgrade request that
// authentication may need: its cookies and the query parameters of the request URL (browsers
// cannot set headers on a WebSocket request, so a session cookie or a token in the query is
// how they identify themselves).
//
// The connections the Listener hands to Mochi implement it; an authentication hook finds it
// with a type assertion on mqtt.Client.Net.Conn. Both methods return copies the caller may
// keep and change. Nothing else of the request is kept. Cookies and query values may be
// secrets: never log them.
type Handshake interface {
	// Cookies returns the request's cookies by name. When a name occurs more than once, the
	// first wins (browsers send the most specific path first). It is never nil.
	Cookies() map[string]string
	// Query returns the query parameters of the request URL. It is never nil.
	Query() url.Values
}

var _ Handshake = (*conn)(nil)

// handshake is the part of an upgrade request that a conn keeps. It is set before the
// connection is handed to Mochi and never changed, so it needs no lock.
type handshake struct {
	cookies map[string]string
	query   url.Values
}

// newHandshake records the cookies and query parameters of r.
func newHandshake(r *http.Request) handshake {
	h := handshake{cookies: make(map[string]string), query: r.URL.Query()}
	for _, c := range r.Cookies() {
		if _, dup := h.cookies[c.Name]; !dup {
			h.cookies[c.Name] = c.Value
		}
	}
	return h
}

// Cookies implements Handshake.
func (c *conn) Cookies() map[string]string {
	if c.hs.cookies == nil {
		return map[string]string{}
	}
	return maps.Clone(c.hs.cookies)
}

// Query implements Handshake.
func (c *conn) Query() url.Values {
	q := make(url.Values, len(c.hs.query))
	for k, v := range c.hs.query {
		q[k] = append([]string(nil), v...)
	}
	return q
}
