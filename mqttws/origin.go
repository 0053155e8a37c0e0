package mqttws

import (
	"fmt"
	"net/http"
)

// OriginChecker applies the listener's origin policy to another WebSocket endpoint of the
// broker (the JSON gateway), so that every endpoint admits the same browser origins: requests
// without an Origin header, the request's own host, and Options.AllowedOrigins. Build it with
// NewOriginChecker; the zero value allows only the same host.
type OriginChecker struct{ p originPolicy }

// NewOriginChecker validates allowed, which has the form of Options.AllowedOrigins.
func NewOriginChecker(allowed []string) (OriginChecker, error) {
	p, err := newOriginPolicy(allowed)
	if err != nil {
		return OriginChecker{}, fmt.Errorf("origin checker: %w", err)
	}
	return OriginChecker{p: p}, nil
}

// Check reports whether r may be upgraded. key is the normalised scheme://host of the Origin
// header, safe to log; it is empty when the header is absent or malformed.
func (c OriginChecker) Check(r *http.Request) (key string, ok bool) {
	return c.p.check(r.Header.Get("Origin"), r.Host)
}
