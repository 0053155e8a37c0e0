package mqttws

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

const (
	// DefaultReadLimit is the largest WebSocket message accepted when Options.ReadLimit is zero:
	// a 1 MiB MQTT packet plus room for its fixed header and properties.
	DefaultReadLimit int64 = 1<<20 + 1024
	// DefaultHandshakeTimeout is used when Options.HandshakeTimeout is zero.
	DefaultHandshakeTimeout = 10 * time.Second
)

// Options configures a Listener. Build one with New, which validates them and fills defaults.
type Options struct {
	// ID names the listener to Mochi; it must be unique among the server's listeners. Required.
	ID string
	// Address is informational only: it is what Address reports to Mochi (for example the
	// HTTP server's address and path, ":8080/mqtt"). The listener opens no socket itself.
	Address string
	// AllowedOrigins lists the browser origins, besides the request's own host, that may open a
	// connection. Each entry is matched exactly (case-insensitively) against the Origin header
	// and must have the form scheme://host[:port], without a path or trailing slash, e.g.
	// "https://app.example.com". The single entry "*" allows every origin. Requests without an
	// Origin header (non-browser clients) are always allowed.
	AllowedOrigins []string
	// ReadLimit is the largest WebSocket message, in bytes, accepted from a client; a larger one
	// closes that connection (close code 1009). Zero means DefaultReadLimit. One message may
	// carry several MQTT packets, so keep it at or above the broker's maximum packet size.
	ReadLimit int64
	// HandshakeTimeout bounds writing the upgrade response and, after the upgrade, the wait for
	// the client's MQTT CONNECT packet. Zero means DefaultHandshakeTimeout. Reading the HTTP
	// request itself is bounded by the caller's http.Server (ReadHeaderTimeout).
	HandshakeTimeout time.Duration
	// Logger receives the listener's logs. If nil, the logger Mochi passes to Init is used.
	Logger *slog.Logger
}

// originPolicy decides which Origin headers are allowed beyond the same-host rule.
type originPolicy struct {
	all     bool                // "*" was listed
	allowed map[string]struct{} // normalised scheme://host[:port]
}

// newOriginPolicy validates and normalises the allowlist.
func newOriginPolicy(origins []string) (originPolicy, error) {
	p := originPolicy{allowed: make(map[string]struct{}, len(origins))}
	for _, o := range origins {
		if o == "*" {
			p.all = true
			continue
		}
		key, ok := parseOrigin(o)
		if !ok {
			return originPolicy{}, fmt.Errorf("%w: %q", ErrBadOrigin, o)
		}
		p.allowed[key] = struct{}{}
	}
	return p, nil
}

// parseOrigin returns the lower-cased scheme://host[:port] of an origin and whether the origin
// is exactly that text, as browsers send it: no user info, path, trailing slash, query,
// fragment or percent-escapes.
func parseOrigin(origin string) (key string, ok bool) {
	u, err := url.Parse(origin)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", false
	}
	key = strings.ToLower(u.Scheme + "://" + u.Host)
	if !strings.EqualFold(origin, key) {
		return "", false
	}
	return key, true
}

// check reports whether a request from host with the given Origin header may be upgraded. key is
// the normalised origin, safe to log; it is empty when the header is absent or malformed.
func (p originPolicy) check(origin, host string) (key string, ok bool) {
	if origin == "" {
		return "", true // not a browser; browsers always send Origin on WebSocket requests
	}
	key, valid := parseOrigin(origin)
	if !valid {
		return "", p.all
	}
	if p.all || strings.EqualFold(key[strings.Index(key, "://")+3:], host) {
		return key, true
	}
	_, ok = p.allowed[key]
	return key, ok
}

// withDefaults validates o and returns a copy with defaults applied.
func (o Options) withDefaults() (Options, error) {
	if o.ID == "" {
		return o, ErrNoID
	}
	if o.ReadLimit < 0 {
		return o, fmt.Errorf("%w: %d", ErrBadReadLimit, o.ReadLimit)
	}
	if o.ReadLimit == 0 {
		o.ReadLimit = DefaultReadLimit
	}
	if o.HandshakeTimeout < 0 {
		return o, fmt.Errorf("%w: %s", ErrBadHandshakeTimeout, o.HandshakeTimeout)
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	return o, nil
}
