package acl

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/roomq/roomq/wire"
)

// The session of a web page that logged in elsewhere (hu60): WebSocket clients bring it as a
// cookie or, when they cannot set one, as a query parameter.
const (
	// SessionCookie is the cookie holding the session id.
	SessionCookie = "hu60_sid"
	// SessionQueryParam is the query parameter holding the session id.
	SessionQueryParam = "_sid"
)

// SessionID returns the session id a WebSocket client brought: the cookie SessionCookie, else
// the query parameter SessionQueryParam; "" when neither is there.
func (c Credentials) SessionID() string {
	if sid := c.Cookies[SessionCookie]; sid != "" {
		return sid
	}
	return c.Query.Get(SessionQueryParam)
}

// Defaults and limits of HTTPOptions.
const (
	// DefaultHTTPAuthTimeout bounds one request to the backend when HTTPOptions.Timeout is 0.
	DefaultHTTPAuthTimeout = 3 * time.Second
	// DefaultHTTPAuthCacheTTL is how long an answer is kept when HTTPOptions.CacheTTL is 0.
	DefaultHTTPAuthCacheTTL = 30 * time.Second
	// DefaultHTTPAuthCacheSize bounds the cache when HTTPOptions.CacheSize is 0.
	DefaultHTTPAuthCacheSize = 10000
	// maxHTTPAuthReply is the largest reply body read from the backend.
	maxHTTPAuthReply = 64 << 10
)

// HTTPOptions configure an HTTPAuth.
type HTTPOptions struct {
	// URL is the backend's endpoint, http:// or https://. Required.
	URL string
	// Timeout bounds one request, reply included; 0 means DefaultHTTPAuthTimeout.
	Timeout time.Duration
	// CacheTTL is how long an answer (acceptance or refusal) is reused for the same
	// credentials; 0 means DefaultHTTPAuthCacheTTL and a negative value disables the cache.
	CacheTTL time.Duration
	// CacheSize bounds the number of cached answers; the oldest go first. 0 means
	// DefaultHTTPAuthCacheSize.
	CacheSize int
	// Client sends the requests; nil means a client of the package's own. Redirects are
	// never followed: a 3xx answer counts as a backend failure.
	Client *http.Client
}

// HTTPAuthRequest is the JSON body HTTPAuth posts to the backend.
type HTTPAuthRequest struct {
	// Username is the CONNECT user name ("" when absent).
	Username string `json:"username"`
	// Password is the CONNECT password ("" when absent); it must be UTF-8.
	Password string `json:"password"`
	// ClientID is the MQTT client identifier.
	ClientID string `json:"clientId"`
	// Remote is the client's address, host:port.
	Remote string `json:"remote"`
	// Cookies are a WebSocket client's cookies by name; {} for other clients.
	Cookies map[string]string `json:"cookies"`
	// SID is the session id (cookie hu60_sid, else query _sid) of a WebSocket client, or "".
	// A connection of the JSON gateway (/v1/ws) has no Username, its session id as both SID
	// and Password, and ClientID "ws-gw".
	SID string `json:"sid"`
}

// HTTPAuthReply is the JSON body of the backend's 200 answer.
type HTTPAuthReply struct {
	// User is the authenticated user: a valid user name, required.
	User string `json:"user"`
	// Roles are the user's global roles.
	Roles []string `json:"roles"`
}

// HTTPAuth authenticates clients by asking an HTTP backend: it posts an HTTPAuthRequest to
// HTTPOptions.URL. A 200 answer with an HTTPAuthReply accepts the client as that user; 401 or
// 403 refuses it (ErrBadCredentials); any other answer, a malformed reply, an unreachable
// backend or a timeout is ErrAuthUnavailable. Build it with NewHTTPAuth; it is safe for
// concurrent use.
//
// Acceptances and refusals are cached for HTTPOptions.CacheTTL, keyed by a SHA-256 hash of
// the request without the client's port (a reconnection comes from a new port), so a burst of
// reconnections costs one request. Failures are not cached. Expired answers are dropped when
// met; the cache starts no goroutine.
type HTTPAuth struct {
	url     string
	timeout time.Duration
	client  *http.Client

	ttl     time.Duration // <= 0: no cache
	maxSize int

	mu    sync.Mutex
	cache map[[sha256.Size]byte]*list.Element // of *cacheEntry
	order *list.List                          // oldest first; all entries share one TTL
}

// cacheEntry is one cached answer.
type cacheEntry struct {
	key     [sha256.Size]byte
	id      Identity
	refused bool
	expires time.Time
}

var _ Authenticator = (*HTTPAuth)(nil)

// NewHTTPAuth validates opts and returns the authenticator.
func NewHTTPAuth(opts HTTPOptions) (*HTTPAuth, error) {
	var errs []error
	u, err := url.Parse(opts.URL)
	switch {
	case opts.URL == "":
		errs = append(errs, errors.New("a URL is required"))
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		errs = append(errs, errors.New("the URL must be an absolute http:// or https:// URL"))
	}
	if opts.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout must not be negative, got %s", opts.Timeout))
	}
	if opts.CacheSize < 0 {
		errs = append(errs, fmt.Errorf("cache size must not be negative, got %d", opts.CacheSize))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("http auth: %w", err)
	}
	a := &HTTPAuth{
		url:     opts.URL,
		timeout: opts.Timeout,
		ttl:     opts.CacheTTL,
		maxSize: opts.CacheSize,
		cache:   make(map[[sha256.Size]byte]*list.Element),
		order:   list.New(),
	}
	if a.timeout == 0 {
		a.timeout = DefaultHTTPAuthTimeout
	}
	if a.ttl == 0 {
		a.ttl = DefaultHTTPAuthCacheTTL
	}
	if a.maxSize == 0 {
		a.maxSize = DefaultHTTPAuthCacheSize
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	c := *client // our own copy, so that redirects can be refused
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	a.client = &c
	return a, nil
}

// Authenticate implements Authenticator.
func (a *HTTPAuth) Authenticate(ctx context.Context, creds Credentials) (Identity, error) {
	if !utf8.Valid(creds.Password) {
		return Identity{}, fmt.Errorf("%w: the password is not UTF-8", ErrBadCredentials)
	}
	req := HTTPAuthRequest{
		Username: creds.Username,
		Password: string(creds.Password),
		ClientID: creds.ClientID,
		Remote:   creds.Remote,
		Cookies:  creds.Cookies,
		SID:      creds.SessionID(),
	}
	if req.Cookies == nil {
		req.Cookies = map[string]string{}
	}
	key := cacheKey(req)
	if id, refused, ok := a.cached(key); ok {
		if refused {
			return Identity{}, fmt.Errorf("%w: refused by the auth backend (cached)", ErrBadCredentials)
		}
		return id, nil
	}
	id, err := a.ask(ctx, req)
	switch {
	case err == nil:
		a.store(key, id, false)
	case errors.Is(err, ErrBadCredentials):
		a.store(key, Identity{}, true)
	}
	return id, err
}

// ask posts req to the backend and interprets the answer.
func (a *HTTPAuth) ask(ctx context.Context, req HTTPAuthRequest) (Identity, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: encode request: %w", ErrAuthUnavailable, err)
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrAuthUnavailable, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(hr)
	if err != nil {
		// The URL may hold a secret: report the cause only.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Identity{}, fmt.Errorf("%w: auth backend: %w", ErrAuthUnavailable, err)
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxHTTPAuthReply)) // keep the connection
		_ = resp.Body.Close()
	}()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden:
		return Identity{}, fmt.Errorf("%w: refused by the auth backend (%d)", ErrBadCredentials, resp.StatusCode)
	default:
		return Identity{}, fmt.Errorf("%w: auth backend answered %d", ErrAuthUnavailable, resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPAuthReply+1))
	if err != nil {
		return Identity{}, fmt.Errorf("%w: auth backend: read reply: %w", ErrAuthUnavailable, err)
	}
	if len(data) > maxHTTPAuthReply {
		return Identity{}, fmt.Errorf("%w: auth backend: reply larger than %d bytes", ErrAuthUnavailable, maxHTTPAuthReply)
	}
	var reply HTTPAuthReply
	if err := json.Unmarshal(data, &reply); err != nil {
		return Identity{}, fmt.Errorf("%w: auth backend: reply is not the expected JSON: %w", ErrAuthUnavailable, err)
	}
	if !wire.ValidName(reply.User) {
		return Identity{}, fmt.Errorf("%w: auth backend: reply has no valid user name", ErrAuthUnavailable)
	}
	for _, r := range reply.Roles {
		if !wire.ValidName(r) {
			return Identity{}, fmt.Errorf("%w: auth backend: reply has an invalid role name", ErrAuthUnavailable)
		}
	}
	return Identity(reply), nil
}

// cacheKey hashes what the backend decides on. The remote address counts without its port.
func cacheKey(req HTTPAuthRequest) [sha256.Size]byte {
	h := sha256.New()
	field := func(s string) {
		_ = binary.Write(h, binary.BigEndian, uint64(len(s)))
		_, _ = io.WriteString(h, s)
	}
	remote := req.Remote
	if host, _, err := net.SplitHostPort(remote); err == nil {
		remote = host
	}
	field(req.Username)
	field(req.Password)
	field(req.ClientID)
	field(remote)
	field(req.SID)
	names := slices.Sorted(maps.Keys(req.Cookies))
	_ = binary.Write(h, binary.BigEndian, uint64(len(names)))
	for _, n := range names {
		field(n)
		field(req.Cookies[n])
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	return key
}

// cached returns the live cached answer for key.
func (a *HTTPAuth) cached(key [sha256.Size]byte) (id Identity, refused, ok bool) {
	if a.ttl <= 0 {
		return Identity{}, false, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expire(time.Now())
	el, ok := a.cache[key]
	if !ok {
		return Identity{}, false, false
	}
	e := el.Value.(*cacheEntry)
	return Identity{User: e.id.User, Roles: slices.Clone(e.id.Roles)}, e.refused, true
}

// store caches an answer for key, making room if the cache is full.
func (a *HTTPAuth) store(key [sha256.Size]byte, id Identity, refused bool) {
	if a.ttl <= 0 {
		return
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.expire(now)
	if el, ok := a.cache[key]; ok { // answered twice at once; keep the newer
		a.order.Remove(el)
		delete(a.cache, key)
	}
	for a.order.Len() >= a.maxSize {
		a.drop(a.order.Front())
	}
	e := &cacheEntry{key: key, id: Identity{User: id.User, Roles: slices.Clone(id.Roles)}, refused: refused, expires: now.Add(a.ttl)}
	a.cache[key] = a.order.PushBack(e)
}

// expire drops the answers that have expired by now. They are the oldest, because every
// entry lives for the same TTL. Lock mu must be held.
func (a *HTTPAuth) expire(now time.Time) {
	for el := a.order.Front(); el != nil && !now.Before(el.Value.(*cacheEntry).expires); el = a.order.Front() {
		a.drop(el)
	}
}

// drop removes a cached answer. Lock mu must be held.
func (a *HTTPAuth) drop(el *list.Element) {
	delete(a.cache, el.Value.(*cacheEntry).key)
	a.order.Remove(el)
}
