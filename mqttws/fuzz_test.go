package mqttws_test

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/roomq/roomq/mqttws"
)

// FuzzOrigin feeds arbitrary Origin headers to the handshake: it must never panic, and it may
// only let through no origin, the request's own host (broker.test) or the allowlisted origin.
func FuzzOrigin(f *testing.F) {
	for _, s := range []string{
		"", "null", "https://app.example.com", "HTTPS://APP.EXAMPLE.COM", "http://broker.test",
		"https://app.example.com/", "https://app.example.com.evil", "https://user@app.example.com",
		"https://app.example.com?x", "https://app%2eexample.com", "http://[::1]:80", "://broker.test",
		"http://broker.test:80", "https://evil.example", "\x00", "http://",
	} {
		f.Add(s)
	}
	l, err := mqttws.New(mqttws.Options{ID: "fuzz", AllowedOrigins: []string{"https://app.example.com"}})
	if err != nil {
		f.Fatalf("new: %v", err)
	}
	go l.Serve(func(string, net.Conn) error { return nil })
	f.Cleanup(func() { l.Close(func(string) {}) })
	waitFor(f, timeout, func() bool { return serveStatus(l, nil) != http.StatusServiceUnavailable })

	f.Fuzz(func(t *testing.T, origin string) {
		if strings.ContainsAny(origin, "\r\n") {
			return // not expressible as a header value
		}
		status := serveStatus(l, http.Header{"Origin": {origin}})
		switch status {
		case http.StatusForbidden:
			return
		case http.StatusBadRequest: // passed the origin check; not a WebSocket request
		default:
			t.Fatalf("origin %q: status %d, want 403 or 400", origin, status)
		}
		if origin == "" || strings.EqualFold(origin, "https://app.example.com") {
			return
		}
		if i := strings.Index(origin, "://"); i > 0 && strings.EqualFold(origin[i+3:], "broker.test") {
			return
		}
		t.Fatalf("origin %q was allowed", origin)
	})
}
