package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/roomq/roomq/acl"
)

const testSecret = "0123456789abcdef0123456789abcdef"

// writeTemp writes content to a new file named name in dir and returns its path.
func writeTemp(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// usersFile writes a users file with alice (password "pw-alice", role admin).
func usersFile(t *testing.T, dir string) string {
	t.Helper()
	users, err := acl.SetStaticUser(nil, "alice", []byte("pw-alice"), []string{acl.RoleAdmin}, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	data, err := acl.MarshalStaticUsers(users)
	if err != nil {
		t.Fatal(err)
	}
	return writeTemp(t, dir, "users.yaml", string(data))
}

// ecKeyFile writes the PEM public key of a new P-256 key and returns the key and the path.
func ecKeyFile(t *testing.T, dir string) (*ecdsa.PrivateKey, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return k, writeTemp(t, dir, "key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
}

func token(t *testing.T, method jwt.SigningMethod, key any, sub string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix(), "roles": []string{"admin"}}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// authenticate runs the authenticator of opts and returns the user it accepts.
func authenticate(t *testing.T, a acl.Authenticator, creds acl.Credentials) (string, error) {
	t.Helper()
	if a == nil {
		t.Fatal("no authenticator configured")
	}
	id, err := a.Authenticate(context.Background(), creds)
	return id.User, err
}

func TestAuthModes(t *testing.T) {
	dir := t.TempDir()
	users := usersFile(t, dir)
	ecKey, ecPEM := ecKeyFile(t, dir)
	secretFile := writeTemp(t, dir, "secret", testSecret+"\n")
	var asked atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		var req acl.HTTPAuthRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Password != "pw-"+req.Username {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(acl.HTTPAuthReply{User: req.Username})
	}))
	defer backend.Close()

	t.Run("none", func(t *testing.T) {
		_, opts, err := load(t, "auth: {mode: none, admins: [root]}", nil)
		if err != nil {
			t.Fatal(err)
		}
		check(t, "Authenticator", opts.Authenticator, nil) // the broker's development mode
		check(t, "Admins", opts.Admins, []string{"root"})
	})
	t.Run("static", func(t *testing.T) {
		_, opts, err := load(t, fmt.Sprintf("auth: {mode: static, static: {file: %q}}", users), nil)
		if err != nil {
			t.Fatal(err)
		}
		if user, err := authenticate(t, opts.Authenticator, acl.Credentials{Username: "alice", Password: []byte("pw-alice")}); err != nil || user != "alice" {
			t.Errorf("alice: %q, %v", user, err)
		}
		if _, err := authenticate(t, opts.Authenticator, acl.Credentials{Username: "alice", Password: []byte("nope")}); !errors.Is(err, acl.ErrBadCredentials) {
			t.Errorf("wrong password: %v", err)
		}
	})
	t.Run("jwt HS256 from the environment", func(t *testing.T) {
		_, opts, err := load(t, "", []string{"ROOMQ_AUTH__MODE=jwt", "ROOMQ_AUTH__JWT__ALGORITHMS=HS256", "ROOMQ_AUTH__JWT__SECRET=" + testSecret})
		if err != nil {
			t.Fatal(err)
		}
		tok := token(t, jwt.SigningMethodHS256, []byte(testSecret), "bob")
		if user, err := authenticate(t, opts.Authenticator, acl.Credentials{Password: []byte(tok)}); err != nil || user != "bob" {
			t.Errorf("bob: %q, %v", user, err)
		}
	})
	t.Run("jwt from files, token in a cookie", func(t *testing.T) {
		file := fmt.Sprintf(`
auth:
  mode: jwt
  jwt: {algorithms: [HS256, ES256], secret_file: %q, public_key_file: %q, query_param: "", cookie: jwt}
`, secretFile, ecPEM)
		_, opts, err := load(t, file, nil)
		if err != nil {
			t.Fatal(err)
		}
		hs := token(t, jwt.SigningMethodHS256, []byte(testSecret), "carol")
		es := token(t, jwt.SigningMethodES256, ecKey, "dave")
		if user, err := authenticate(t, opts.Authenticator, acl.Credentials{Password: []byte(hs)}); err != nil || user != "carol" {
			t.Errorf("HS256 with the secret file (newline dropped): %q, %v", user, err)
		}
		if user, err := authenticate(t, opts.Authenticator, acl.Credentials{Cookies: map[string]string{"jwt": es}}); err != nil || user != "dave" {
			t.Errorf("ES256 from the cookie: %q, %v", user, err)
		}
		if _, err := authenticate(t, opts.Authenticator, acl.Credentials{Query: map[string][]string{"token": {es}}}); err == nil {
			t.Error("the query was read although query_param is empty")
		}
	})
	t.Run("http without cache", func(t *testing.T) {
		file := fmt.Sprintf("auth: {mode: http, http: {url: %q, timeout: 1s, cache_ttl: 0s}}", backend.URL)
		_, opts, err := load(t, file, nil)
		if err != nil {
			t.Fatal(err)
		}
		before := asked.Load()
		for range 2 {
			if user, err := authenticate(t, opts.Authenticator, acl.Credentials{Username: "erin", Password: []byte("pw-erin")}); err != nil || user != "erin" {
				t.Errorf("erin: %q, %v", user, err)
			}
		}
		if n := asked.Load() - before; n != 2 {
			t.Errorf("backend asked %d times, want 2 (cache_ttl 0s disables the cache)", n)
		}
	})
	t.Run("http with the default cache", func(t *testing.T) {
		_, opts, err := load(t, "", []string{"ROOMQ_AUTH__MODE=http", "ROOMQ_AUTH__HTTP__URL=" + backend.URL})
		if err != nil {
			t.Fatal(err)
		}
		before := asked.Load()
		for range 2 {
			if _, err := authenticate(t, opts.Authenticator, acl.Credentials{Username: "erin", Password: []byte("pw-erin")}); err != nil {
				t.Error(err)
			}
		}
		if n := asked.Load() - before; n != 1 {
			t.Errorf("backend asked %d times, want 1", n)
		}
	})
}

func TestAuthInvalid(t *testing.T) {
	dir := t.TempDir()
	users := usersFile(t, dir)
	_, ecPEM := ecKeyFile(t, dir)
	missing := filepath.Join(dir, "missing")
	emptyUsers := writeTemp(t, dir, "empty.yaml", "users: []\n")
	badUsers := writeTemp(t, dir, "bad.yaml", "users: [{name: 'a/b', hash: x}]\n")
	notYAML := writeTemp(t, dir, "notyaml.yaml", "users: [\n")
	shortSecret := writeTemp(t, dir, "short", "short\n")
	notPEM := writeTemp(t, dir, "notpem", "ssh-ed25519 AAAA\n")
	jwtWith := func(s string) string { return "auth: {mode: jwt, jwt: {" + s + "}}" }
	tests := []struct {
		name    string
		file    string
		environ []string
		want    []string
		not     string // must not appear in the error
	}{
		{name: "static without file", file: "auth: {mode: static}", want: []string{"auth.static.file", "required", "broker passwd"}},
		{name: "static missing file", file: fmt.Sprintf("auth: {mode: static, static: {file: %q}}", missing), want: []string{"auth.static.file", "no such file"}},
		{name: "static no users", file: fmt.Sprintf("auth: {mode: static, static: {file: %q}}", emptyUsers), want: []string{"auth.static.file", "lists no users"}},
		{name: "static bad entry", file: fmt.Sprintf("auth: {mode: static, static: {file: %q}}", badUsers), want: []string{"auth.static.file", "users[0]", `"a/b"`, "bcrypt"}},
		{name: "static not YAML", file: fmt.Sprintf("auth: {mode: static, static: {file: %q}}", notYAML), want: []string{"auth.static.file", notYAML}},
		{name: "jwt no algorithm", file: jwtWith("secret: " + testSecret), want: []string{"auth.jwt.algorithms", "at least one"}, not: testSecret},
		{name: "jwt alg none", file: jwtWith("algorithms: [HS256, none], secret: " + testSecret), want: []string{"auth.jwt.algorithms[1]", `"none"`}, not: testSecret},
		{name: "jwt HS256 without secret", file: jwtWith("algorithms: [HS256]"), want: []string{"auth.jwt.secret", "required"}},
		{name: "jwt short secret", file: jwtWith("algorithms: [HS256], secret: short"), want: []string{"auth.jwt.secret", "at least 32 bytes for HS256, got 5"}, not: "short"},
		{name: "jwt short secret file", file: jwtWith(fmt.Sprintf("algorithms: [HS256], secret_file: %q", shortSecret)), want: []string{"auth.jwt.secret_file", "got 5"}},
		{name: "jwt missing secret file", file: jwtWith(fmt.Sprintf("algorithms: [HS256], secret_file: %q", missing)), want: []string{"auth.jwt.secret_file", "no such file"}},
		{name: "jwt two secrets", file: jwtWith(fmt.Sprintf("algorithms: [HS256], secret: %s, secret_file: %q", testSecret, shortSecret)), want: []string{"auth.jwt.secret, auth.jwt.secret_file", "not both"}, not: testSecret},
		{name: "jwt secret without HS256", file: jwtWith(fmt.Sprintf("algorithms: [ES256], secret: %s, public_key_file: %q", testSecret, ecPEM)), want: []string{"auth.jwt.secret", "does not list HS256"}, not: testSecret},
		{name: "jwt secret from env without HS256", file: jwtWith(fmt.Sprintf("algorithms: [ES256], public_key_file: %q", ecPEM)), environ: []string{"ROOMQ_AUTH__JWT__SECRET=" + testSecret}, want: []string{"auth.jwt.secret"}, not: testSecret},
		{name: "jwt RS256 without key", file: jwtWith("algorithms: [RS256]"), want: []string{"auth.jwt.public_key_file", "required"}},
		{name: "jwt key without RS256 or ES256", file: jwtWith(fmt.Sprintf("algorithms: [HS256], secret: %s, public_key_file: %q", testSecret, ecPEM)), want: []string{"auth.jwt.public_key_file", "neither"}},
		{name: "jwt missing key file", file: jwtWith(fmt.Sprintf("algorithms: [RS256], public_key_file: %q", missing)), want: []string{"auth.jwt.public_key_file", "no such file"}},
		{name: "jwt not PEM", file: jwtWith(fmt.Sprintf("algorithms: [RS256], public_key_file: %q", notPEM)), want: []string{"auth.jwt.public_key_file", "no PEM block"}},
		{name: "jwt EC key for RS256", file: jwtWith(fmt.Sprintf("algorithms: [RS256], public_key_file: %q", ecPEM)), want: []string{"auth.jwt.public_key_file", "RS256 needs an RSA public key"}},
		{name: "jwt cookie name", file: jwtWith(fmt.Sprintf("algorithms: [ES256], public_key_file: %q, cookie: 'a b'", ecPEM)), want: []string{"auth.jwt.cookie", `"a b"`}},
		{name: "jwt query param", file: jwtWith(fmt.Sprintf("algorithms: [ES256], public_key_file: %q, query_param: 'a&b'", ecPEM)), want: []string{"auth.jwt.query_param"}},
		{name: "http without url", file: "auth: {mode: http}", want: []string{"auth.http.url", "required"}},
		{name: "http relative url", file: "auth: {mode: http, http: {url: 'auth.example/check?key=hunter2'}}", want: []string{"auth.http.url", "absolute"}, not: "hunter2"},
		{name: "http zero timeout", environ: []string{"ROOMQ_AUTH__MODE=http", "ROOMQ_AUTH__HTTP__URL=http://a.example", "ROOMQ_AUTH__HTTP__TIMEOUT=0s"}, want: []string{"auth.http.timeout", "positive"}},
		{name: "http negative ttl", file: "auth: {mode: http, http: {url: 'http://a.example', cache_ttl: -1s}}", want: []string{"auth.http.cache_ttl"}},
		{name: "http timeout without unit", file: "auth: {http: {timeout: 3}}", want: []string{"auth.http.timeout", "unit"}},
		{name: "unknown auth key", file: "auth: {jwt: {algorithm: [HS256]}}", want: []string{"auth.jwt.algorithm", "did you mean auth.jwt.algorithms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := load(t, tt.file, tt.environ)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tt.not != "" && strings.Contains(err.Error(), tt.not) {
				t.Errorf("error %q contains %q", err, tt.not)
			}
		})
	}

	// Sections of the modes not chosen are not checked.
	if _, _, err := load(t, "auth: {mode: none, static: {file: /nonexistent}, jwt: {algorithms: [none]}, http: {url: x}}", nil); err != nil {
		t.Errorf("unused auth sections were checked: %v", err)
	}
	if _, _, err := load(t, fmt.Sprintf("auth: {mode: static, static: {file: %q}, http: {url: x}}", users), nil); err != nil {
		t.Errorf("mode static: %v", err)
	}
}
