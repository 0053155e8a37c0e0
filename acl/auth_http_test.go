package acl_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roomq/roomq/acl"
)

var _ acl.Authenticator = (*acl.HTTPAuth)(nil)

// backend is a fake auth backend: it accepts users whose password is their name reversed,
// answers 403 to "banned" and 401 to everyone else, and counts the requests it receives.
type backend struct {
	*httptest.Server
	requests atomic.Int64
	last     atomic.Pointer[acl.HTTPAuthRequest]
}

func newBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.requests.Add(1)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		var req acl.HTTPAuthRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b.last.Store(&req)
		switch {
		case req.SID == "sid-of-dora":
			writeJSON(w, acl.HTTPAuthReply{User: "dora"})
		case req.Username == "banned":
			w.WriteHeader(http.StatusForbidden)
		case req.Username != "" && req.Password == reverse(req.Username):
			writeJSON(w, acl.HTTPAuthReply{User: req.Username, Roles: []string{"member"}})
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(b.Close)
	return b
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

func newHTTP(t *testing.T, opts acl.HTTPOptions) *acl.HTTPAuth {
	t.Helper()
	a, err := acl.NewHTTPAuth(opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func creds(user, pw string) acl.Credentials {
	return acl.Credentials{Username: user, Password: []byte(pw), ClientID: user + "-1", Remote: "192.0.2.7:50001"}
}

func TestHTTPAuthConformance(t *testing.T) {
	b := newBackend(t)
	conformance(t, newHTTP(t, acl.HTTPOptions{URL: b.URL}),
		creds("alice", "ecila"), acl.Identity{User: "alice", Roles: []string{"member"}},
		creds("alice", "s3cret-guess"), "s3cret-guess")
}

func TestHTTPAuthRequest(t *testing.T) {
	b := newBackend(t)
	a := newHTTP(t, acl.HTTPOptions{URL: b.URL + "/auth?key=k", CacheTTL: -1})
	c := creds("alice", "ecila")
	c.Cookies = map[string]string{acl.SessionCookie: "sid-1", "theme": "dark"}
	c.Query = url.Values{acl.SessionQueryParam: {"sid-2"}, "token": {"t"}}
	if _, err := a.Authenticate(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	want := acl.HTTPAuthRequest{
		Username: "alice", Password: "ecila", ClientID: "alice-1", Remote: "192.0.2.7:50001",
		Cookies: map[string]string{acl.SessionCookie: "sid-1", "theme": "dark"}, SID: "sid-1",
	}
	if got := *b.last.Load(); !reflect.DeepEqual(got, want) {
		t.Errorf("request = %+v, want %+v", got, want)
	}

	// The query's _sid serves when there is no cookie; a TCP client sends {} and "".
	for _, tc := range []struct {
		cookies map[string]string
		query   url.Values
		sid     string
	}{
		{nil, url.Values{acl.SessionQueryParam: {"sid-of-dora"}}, "sid-of-dora"},
		{map[string]string{"other": "x"}, nil, ""},
		{nil, nil, ""},
	} {
		c := acl.Credentials{ClientID: "web", Remote: "192.0.2.7:1", Cookies: tc.cookies, Query: tc.query}
		_, _ = a.Authenticate(context.Background(), c)
		got := b.last.Load()
		if got.SID != tc.sid || got.Cookies == nil {
			t.Errorf("cookies %v, query %v: sent sid %q, cookies %v; want sid %q", tc.cookies, tc.query, got.SID, got.Cookies, tc.sid)
		}
	}
	// The backend may name the user itself, as it does for a session.
	id, err := a.Authenticate(context.Background(), acl.Credentials{Cookies: map[string]string{acl.SessionCookie: "sid-of-dora"}})
	if err != nil || id.User != "dora" {
		t.Errorf("session login = %+v, %v; want dora", id, err)
	}
}

func TestHTTPAuthAnswers(t *testing.T) {
	b := newBackend(t)
	a := newHTTP(t, acl.HTTPOptions{URL: b.URL, CacheTTL: -1})
	for _, tc := range []struct {
		name     string
		user, pw string
		want     error
	}{
		{"accepted", "bob", "bob", nil},
		{"401", "bob", "wrong", acl.ErrBadCredentials},
		{"403", "banned", "dennab", acl.ErrBadCredentials},
		{"no user", "", "", acl.ErrBadCredentials},
	} {
		_, err := a.Authenticate(context.Background(), creds(tc.user, tc.pw))
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	// A password that JSON cannot carry exactly is refused without asking.
	before := b.requests.Load()
	if _, err := a.Authenticate(context.Background(), creds("bob", "\xff")); !errors.Is(err, acl.ErrBadCredentials) {
		t.Errorf("binary password: err = %v, want ErrBadCredentials", err)
	}
	if b.requests.Load() != before {
		t.Error("a binary password was sent to the backend")
	}
}

// Whatever is not a clear yes or no is ErrAuthUnavailable, and is not cached.
func TestHTTPAuthUnavailable(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"500", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusInternalServerError) }},
		{"503", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }},
		{"404", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) }},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}},
		{"not JSON", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>ok</html>")) }},
		{"no user", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, map[string]any{"roles": []string{"admin"}}) }},
		{"bad user", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, acl.HTTPAuthReply{User: "a/b"}) }},
		{"bad role", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, acl.HTTPAuthReply{User: "a", Roles: []string{""}})
		}},
		{"huge reply", func(w http.ResponseWriter, _ *http.Request) {
			_, _ = fmt.Fprintf(w, `{"user":"a","roles":[%q]}`, strings.Repeat("r", 100<<10))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				tc.handler(w, r)
			}))
			defer srv.Close()
			a := newHTTP(t, acl.HTTPOptions{URL: srv.URL + "/auth?api_key=hunter2"})
			for range 2 {
				_, err := a.Authenticate(context.Background(), creds("alice", "pw-of-alice"))
				if !errors.Is(err, acl.ErrAuthUnavailable) || errors.Is(err, acl.ErrBadCredentials) {
					t.Fatalf("err = %v, want ErrAuthUnavailable only", err)
				}
				if s := err.Error(); strings.Contains(s, "pw-of-alice") || strings.Contains(s, "hunter2") {
					t.Errorf("error %q holds a secret", s)
				}
			}
			if n.Load() != 2 {
				t.Errorf("backend asked %d times for two logins, want 2: failures must not be cached", n.Load())
			}
		})
	}
}

func TestHTTPAuthDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	a := newHTTP(t, acl.HTTPOptions{URL: "http://" + addr + "/auth?api_key=hunter2"})
	_, err = a.Authenticate(context.Background(), creds("alice", "ecila"))
	if !errors.Is(err, acl.ErrAuthUnavailable) {
		t.Fatalf("err = %v, want ErrAuthUnavailable", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q holds the URL's secret", err)
	}
}

func TestHTTPAuthTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	a := newHTTP(t, acl.HTTPOptions{URL: srv.URL, Timeout: 100 * time.Millisecond})
	start := time.Now()
	_, err := a.Authenticate(context.Background(), creds("alice", "ecila"))
	if !errors.Is(err, acl.ErrAuthUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrAuthUnavailable after the deadline", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 3*time.Second {
		t.Errorf("gave up after %v, want about the 100ms timeout", d)
	}

	// The caller's deadline counts too.
	a = newHTTP(t, acl.HTTPOptions{URL: srv.URL, Timeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := a.Authenticate(ctx, creds("alice", "ecila")); !errors.Is(err, acl.ErrAuthUnavailable) {
		t.Fatalf("err = %v, want ErrAuthUnavailable", err)
	}
}

func TestHTTPAuthCache(t *testing.T) {
	b := newBackend(t)
	a := newHTTP(t, acl.HTTPOptions{URL: b.URL})
	ctx := context.Background()
	login := func(c acl.Credentials) (acl.Identity, error) {
		t.Helper()
		return a.Authenticate(ctx, c)
	}
	wantRequests := func(n int64) {
		t.Helper()
		if got := b.requests.Load(); got != n {
			t.Errorf("backend asked %d times, want %d", got, n)
		}
	}

	first, err := login(creds("alice", "ecila"))
	if err != nil {
		t.Fatal(err)
	}
	again := creds("alice", "ecila")
	again.Remote = "192.0.2.7:50002" // a reconnection from another port
	second, err := login(again)
	if err != nil || !reflect.DeepEqual(first, second) {
		t.Fatalf("cached login = %+v, %v; want %+v", second, err, first)
	}
	wantRequests(1)

	// Refusals are cached too.
	for range 2 {
		if _, err := login(creds("alice", "wrong")); !errors.Is(err, acl.ErrBadCredentials) {
			t.Fatalf("err = %v, want ErrBadCredentials", err)
		}
	}
	wantRequests(2)

	// Anything the backend sees is part of the key.
	other := creds("alice", "ecila")
	other.Remote = "198.51.100.1:50001"
	_, _ = login(other)
	other = creds("alice", "ecila")
	other.ClientID = "alice-2"
	_, _ = login(other)
	other = creds("alice", "ecila")
	other.Cookies = map[string]string{"theme": "dark"}
	_, _ = login(other)
	other.Cookies = map[string]string{"theme": "light"}
	_, _ = login(other)
	other.Cookies = nil
	other.Query = url.Values{acl.SessionQueryParam: {"s"}}
	_, _ = login(other)
	wantRequests(7)
}

func TestHTTPAuthCacheExpires(t *testing.T) {
	b := newBackend(t)
	a := newHTTP(t, acl.HTTPOptions{URL: b.URL, CacheTTL: 20 * time.Millisecond})
	deadline := time.Now().Add(5 * time.Second)
	for b.requests.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the cached answer did not expire")
		}
		if _, err := a.Authenticate(context.Background(), creds("alice", "ecila")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHTTPAuthCacheBounded(t *testing.T) {
	b := newBackend(t)
	a := newHTTP(t, acl.HTTPOptions{URL: b.URL, CacheSize: 2})
	for _, u := range []string{"ann", "ben", "ann", "ben", "cid", "ben", "cid", "ann"} {
		if _, err := a.Authenticate(context.Background(), creds(u, reverse(u))); err != nil {
			t.Fatal(err)
		}
	}
	// ann and ben are cached; cid pushes ann out; ann comes back.
	if got := b.requests.Load(); got != 4 {
		t.Errorf("backend asked %d times, want 4", got)
	}
}

func TestHTTPAuthNoCache(t *testing.T) {
	b := newBackend(t)
	a := newHTTP(t, acl.HTTPOptions{URL: b.URL, CacheTTL: -1})
	for range 3 {
		if _, err := a.Authenticate(context.Background(), creds("alice", "ecila")); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.requests.Load(); got != 3 {
		t.Errorf("backend asked %d times, want 3", got)
	}
}

func TestNewHTTPAuthValidates(t *testing.T) {
	for _, tc := range []struct {
		opts acl.HTTPOptions
		want string
	}{
		{acl.HTTPOptions{}, "a URL is required"},
		{acl.HTTPOptions{URL: "auth.example/check"}, "absolute http"},
		{acl.HTTPOptions{URL: "ftp://auth.example/check"}, "absolute http"},
		{acl.HTTPOptions{URL: "http://"}, "absolute http"},
		{acl.HTTPOptions{URL: "http://a.example", Timeout: -time.Second}, "timeout"},
		{acl.HTTPOptions{URL: "http://a.example", CacheSize: -1}, "cache size"},
	} {
		if _, err := acl.NewHTTPAuth(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewHTTPAuth(%+v) = %v, want an error containing %q", tc.opts, err, tc.want)
		}
	}
}

func TestSessionID(t *testing.T) {
	for _, tc := range []struct {
		creds acl.Credentials
		want  string
	}{
		{acl.Credentials{}, ""},
		{acl.Credentials{Cookies: map[string]string{acl.SessionCookie: "c"}, Query: url.Values{acl.SessionQueryParam: {"q"}}}, "c"},
		{acl.Credentials{Cookies: map[string]string{acl.SessionCookie: ""}, Query: url.Values{acl.SessionQueryParam: {"q"}}}, "q"},
		{acl.Credentials{Query: url.Values{"sid": {"q"}}}, ""},
	} {
		if got := tc.creds.SessionID(); got != tc.want {
			t.Errorf("SessionID(%+v) = %q, want %q", tc.creds, got, tc.want)
		}
	}
}
