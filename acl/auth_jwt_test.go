package acl_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomq/roomq/acl"
)

var _ acl.Authenticator = (*acl.JWTAuth)(nil)

// jwtKeys are keys generated once for the JWT tests.
type jwtKeys struct {
	secret []byte
	rsa    *rsa.PrivateKey
	rsaPEM []byte // PKIX public key
	ec     *ecdsa.PrivateKey
	ecPEM  []byte
	// other keys of each kind, unknown to the authenticators
	rsa2 *rsa.PrivateKey
	ec2  *ecdsa.PrivateKey
}

var (
	keysOnce sync.Once
	keys     jwtKeys
)

func testKeys(t *testing.T) jwtKeys {
	t.Helper()
	keysOnce.Do(func() {
		keys.secret = []byte("0123456789abcdef0123456789abcdef")
		keys.rsa = mustRSA(t, 2048)
		keys.rsa2 = mustRSA(t, 2048)
		keys.ec = mustEC(t, elliptic.P256())
		keys.ec2 = mustEC(t, elliptic.P256())
		keys.rsaPEM = publicPEM(t, &keys.rsa.PublicKey)
		keys.ecPEM = publicPEM(t, &keys.ec.PublicKey)
	})
	if keys.rsa == nil {
		t.Fatal("key generation failed in an earlier test")
	}
	return keys
}

func mustRSA(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustEC(t *testing.T, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func publicPEM(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// sign returns a token of claims signed with method and key.
func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// claimsFor returns valid claims for sub, expiring in an hour, with the given roles.
func claimsFor(sub string, roles ...string) jwt.MapClaims {
	c := jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	if roles != nil {
		c["roles"] = roles
	}
	return c
}

func newJWT(t *testing.T, opts acl.JWTOptions) *acl.JWTAuth {
	t.Helper()
	a, err := acl.NewJWTAuth(opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// allAlgorithms accepts HS256, RS256 and ES256 with the test keys.
func allAlgorithms(t *testing.T) acl.JWTOptions {
	k := testKeys(t)
	return acl.JWTOptions{
		Algorithms:    []string{acl.AlgHS256, acl.AlgRS256, acl.AlgES256},
		Secret:        k.secret,
		PublicKeysPEM: append(append([]byte{}, k.rsaPEM...), k.ecPEM...),
		QueryParam:    acl.DefaultJWTQueryParam,
		Cookie:        "jwt",
	}
}

func TestJWTAuthConformance(t *testing.T) {
	k := testKeys(t)
	a := newJWT(t, allAlgorithms(t))
	good := sign(t, jwt.SigningMethodHS256, k.secret, claimsFor("alice", "admin"))
	forged := sign(t, jwt.SigningMethodHS256, []byte("another secret, 32 bytes long!!!"), claimsFor("alice", "admin"))
	conformance(t, a,
		acl.Credentials{Username: "alice", Password: []byte(good)},
		acl.Identity{User: "alice", Roles: []string{"admin"}},
		acl.Credentials{Username: "alice", Password: []byte(forged)}, forged)
}

func TestJWTAuth(t *testing.T) {
	k := testKeys(t)
	now := time.Now()
	with := func(c jwt.MapClaims, kv ...any) jwt.MapClaims {
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
				continue
			}
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	all := newJWT(t, allAlgorithms(t))
	rsOnly := newJWT(t, acl.JWTOptions{Algorithms: []string{acl.AlgRS256}, PublicKeysPEM: k.rsaPEM})
	strict := allAlgorithms(t)
	strict.Issuer, strict.Audience, strict.RolesClaim = "https://login.example", "roomq", "groups"
	checked := newJWT(t, strict)

	// The classic key confusion: an HS256 token whose HMAC key is the server's RSA public key.
	confused := sign(t, jwt.SigningMethodHS256, k.rsaPEM, claimsFor("mallory", "admin"))
	none := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsFor("mallory", "admin"))

	cases := []struct {
		name  string
		a     *acl.JWTAuth
		user  string
		token string
		want  *acl.Identity
	}{
		{"HS256", all, "", sign(t, jwt.SigningMethodHS256, k.secret, claimsFor("alice", "admin", "mod")), &acl.Identity{User: "alice", Roles: []string{"admin", "mod"}}},
		{"RS256", all, "", sign(t, jwt.SigningMethodRS256, k.rsa, claimsFor("bob")), &acl.Identity{User: "bob"}},
		{"ES256", all, "", sign(t, jwt.SigningMethodES256, k.ec, claimsFor("carol", "x")), &acl.Identity{User: "carol", Roles: []string{"x"}}},
		{"RS256 only", rsOnly, "", sign(t, jwt.SigningMethodRS256, k.rsa, claimsFor("bob")), &acl.Identity{User: "bob"}},
		{"user name equal to sub", all, "alice", sign(t, jwt.SigningMethodHS256, k.secret, claimsFor("alice")), &acl.Identity{User: "alice"}},
		{"user name other than sub", all, "bob", sign(t, jwt.SigningMethodHS256, k.secret, claimsFor("alice")), nil},
		{"empty roles", all, "", sign(t, jwt.SigningMethodHS256, k.secret, claimsFor("alice", []string{}...)), &acl.Identity{User: "alice", Roles: []string{}}},
		{"null roles", all, "", sign(t, jwt.SigningMethodHS256, k.secret, with(claimsFor("alice"), "roles", nil)), &acl.Identity{User: "alice"}},

		{"expired", all, "", sign(t, jwt.SigningMethodHS256, k.secret, with(claimsFor("alice"), "exp", now.Add(-time.Minute).Unix())), nil},
		{"expired within the leeway", all, "", sign(t, jwt.SigningMethodHS256, k.secret, with(claimsFor("alice"), "exp", now.Add(-2*time.Second).Unix())), &acl.Identity{User: "alice"}},
		{"no exp", all, "", sign(t, jwt.SigningMethodHS256, k.secret, jwt.MapClaims{"sub": "alice"}), nil},
		{"not yet valid", all, "", sign(t, jwt.SigningMethodHS256, k.secret, with(claimsFor("alice"), "nbf", now.Add(time.Minute).Unix())), nil},
		{"valid from now within the leeway", all, "", sign(t, jwt.SigningMethodHS256, k.secret, with(claimsFor("alice"), "nbf", now.Add(2*time.Second).Unix())), &acl.Identity{User: "alice"}},
		{"HS256 wrong secret", all, "", sign(t, jwt.SigningMethodHS256, []byte("not the secret, but 32 bytes....."), claimsFor("alice")), nil},
		{"RS256 wrong key", all, "", sign(t, jwt.SigningMethodRS256, k.rsa2, claimsFor("alice")), nil},
		{"ES256 wrong key", all, "", sign(t, jwt.SigningMethodES256, k.ec2, claimsFor("alice")), nil},
		{"tampered payload", all, "", tamper(t, sign(t, jwt.SigningMethodRS256, k.rsa, claimsFor("alice")), claimsFor("admin", "admin")), nil},
		{"alg none", all, "", none, nil},
		{"alg none, RS256 only", rsOnly, "", none, nil},
		{"HS256 signed with the RSA public key, RS256 only", rsOnly, "", confused, nil},
		{"HS256 signed with the RSA public key, both allowed", all, "", confused, nil},
		{"ES256 when only RS256 is allowed", rsOnly, "", sign(t, jwt.SigningMethodES256, k.ec, claimsFor("alice")), nil},
		{"HS384", all, "", sign(t, jwt.SigningMethodHS384, k.secret, claimsFor("alice")), nil},
		{"PS256", all, "", sign(t, jwt.SigningMethodPS256, k.rsa, claimsFor("alice")), nil},
		{"no sub", all, "", sign(t, jwt.SigningMethodHS256, k.secret, with(claimsFor("x"), "sub", nil)), nil},
		{"sub not a user name", all, "", sign(t, jwt.SigningMethodHS256, k.secret, claimsFor("a/b")), nil},
		{"roles not an array", all, "", sign(t, jwt.SigningMethodHS256, k.secret, with(claimsFor("alice"), "roles", "admin")), nil},
		{"role not a string", all, "", sign(t, jwt.SigningMethodHS256, k.secret, with(claimsFor("alice"), "roles", []any{"ok", 1})), nil},
		{"role not a name", all, "", sign(t, jwt.SigningMethodHS256, k.secret, claimsFor("alice", "#")), nil},
		{"garbage", all, "", "not.a.token", nil},
		{"no token", all, "alice", "", nil},

		{"issuer and audience", checked, "", sign(t, jwt.SigningMethodHS256, k.secret, with(claimsFor("alice"), "iss", "https://login.example", "aud", []string{"other", "roomq"}, "groups", []string{"ops"})), &acl.Identity{User: "alice", Roles: []string{"ops"}}},
		{"configured roles claim only", checked, "", sign(t, jwt.SigningMethodHS256, k.secret, with(claimsFor("alice", "admin"), "iss", "https://login.example", "aud", "roomq")), &acl.Identity{User: "alice"}},
		{"wrong issuer", checked, "", sign(t, jwt.SigningMethodHS256, k.secret, with(claimsFor("alice"), "iss", "https://evil.example", "aud", "roomq")), nil},
		{"no issuer", checked, "", sign(t, jwt.SigningMethodHS256, k.secret, with(claimsFor("alice"), "aud", "roomq")), nil},
		{"wrong audience", checked, "", sign(t, jwt.SigningMethodHS256, k.secret, with(claimsFor("alice"), "iss", "https://login.example", "aud", "other")), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.a.Authenticate(context.Background(), acl.Credentials{Username: tc.user, Password: []byte(tc.token)})
			if tc.want == nil {
				if !errors.Is(err, acl.ErrBadCredentials) {
					t.Fatalf("Authenticate = %+v, %v; want ErrBadCredentials", id, err)
				}
				if tc.token != "" && strings.Contains(err.Error(), tc.token) {
					t.Errorf("error %q contains the token", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if !reflect.DeepEqual(id, *tc.want) {
				t.Errorf("identity = %+v, want %+v", id, *tc.want)
			}
		})
	}
}

// tamper replaces the payload of token with claims, keeping its header and signature.
func tamper(t *testing.T, token string, claims jwt.MapClaims) string {
	t.Helper()
	other := sign(t, jwt.SigningMethodHS256, []byte("x"), claims)
	parts, otherParts := strings.Split(token, "."), strings.Split(other, ".")
	return parts[0] + "." + otherParts[1] + "." + parts[2]
}

// WebSocket clients bring the token in the query or a cookie when the password is empty.
func TestJWTAuthTokenSources(t *testing.T) {
	k := testKeys(t)
	good := sign(t, jwt.SigningMethodES256, k.ec, claimsFor("alice"))
	bad := sign(t, jwt.SigningMethodES256, k.ec2, claimsFor("alice"))
	a := newJWT(t, allAlgorithms(t))
	noWS := allAlgorithms(t)
	noWS.QueryParam, noWS.Cookie = "", ""
	b := newJWT(t, noWS)

	q := func(v string) url.Values { return url.Values{"token": {v}} }
	cases := []struct {
		name  string
		a     *acl.JWTAuth
		creds acl.Credentials
		ok    bool
	}{
		{"password", a, acl.Credentials{Password: []byte(good)}, true},
		{"query", a, acl.Credentials{Query: q(good)}, true},
		{"cookie", a, acl.Credentials{Cookies: map[string]string{"jwt": good}}, true},
		{"query before cookie", a, acl.Credentials{Query: q(good), Cookies: map[string]string{"jwt": bad}}, true},
		{"bad query, good cookie", a, acl.Credentials{Query: q(bad), Cookies: map[string]string{"jwt": good}}, false},
		{"bad password, good query", a, acl.Credentials{Password: []byte(bad), Query: q(good)}, false},
		{"other query parameter", a, acl.Credentials{Query: url.Values{"jwt": {good}}}, false},
		{"other cookie", a, acl.Credentials{Cookies: map[string]string{"token": good, acl.SessionCookie: good}}, false},
		{"query not read", b, acl.Credentials{Query: q(good)}, false},
		{"cookie not read", b, acl.Credentials{Cookies: map[string]string{"jwt": good}}, false},
		{"nothing", a, acl.Credentials{Username: "alice"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := tc.a.Authenticate(context.Background(), tc.creds)
			switch {
			case tc.ok && (err != nil || id.User != "alice"):
				t.Errorf("Authenticate = %+v, %v; want alice", id, err)
			case !tc.ok && !errors.Is(err, acl.ErrBadCredentials):
				t.Errorf("Authenticate = %+v, %v; want ErrBadCredentials", id, err)
			}
		})
	}
}

// Several public keys of a kind may be given, for a key rotation; certificates work too.
func TestJWTAuthKeyRotationAndCertificates(t *testing.T) {
	k := testKeys(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.rsa2.PublicKey, k.rsa2)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	a := newJWT(t, acl.JWTOptions{
		Algorithms:    []string{acl.AlgRS256, acl.AlgES256},
		PublicKeysPEM: append(append(append(pkcs1, certPEM...), k.ecPEM...), publicPEM(t, &k.ec2.PublicKey)...),
	})
	for _, tok := range []string{
		sign(t, jwt.SigningMethodRS256, k.rsa, claimsFor("a")),
		sign(t, jwt.SigningMethodRS256, k.rsa2, claimsFor("b")),
		sign(t, jwt.SigningMethodES256, k.ec, claimsFor("c")),
		sign(t, jwt.SigningMethodES256, k.ec2, claimsFor("d")),
	} {
		if _, err := a.Authenticate(context.Background(), acl.Credentials{Password: []byte(tok)}); err != nil {
			t.Errorf("token refused: %v", err)
		}
	}
}

func TestNewJWTAuthValidates(t *testing.T) {
	k := testKeys(t)
	privDER, err := x509.MarshalPKCS8PrivateKey(k.ec)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	p384 := publicPEM(t, &mustEC(t, elliptic.P384()).PublicKey)
	rsa1024 := publicPEM(t, &mustRSA(t, 1024).PublicKey)
	cases := []struct {
		name string
		opts acl.JWTOptions
		want string
	}{
		{"no algorithm", acl.JWTOptions{Secret: k.secret}, "no algorithm allowed"},
		{"alg none", acl.JWTOptions{Algorithms: []string{"none"}}, `unsupported algorithm "none"`},
		{"HS512", acl.JWTOptions{Algorithms: []string{"HS512"}, Secret: k.secret}, `unsupported algorithm "HS512"`},
		{"lower case", acl.JWTOptions{Algorithms: []string{"hs256"}}, `unsupported algorithm "hs256"`},
		{"no secret", acl.JWTOptions{Algorithms: []string{acl.AlgHS256}}, "at least 32 bytes, got 0"},
		{"short secret", acl.JWTOptions{Algorithms: []string{acl.AlgHS256}, Secret: []byte("short")}, "at least 32 bytes, got 5"},
		{"secret without HS256", acl.JWTOptions{Algorithms: []string{acl.AlgRS256}, Secret: k.secret, PublicKeysPEM: k.rsaPEM}, "HS256 is not allowed"},
		{"RS256 without key", acl.JWTOptions{Algorithms: []string{acl.AlgRS256}}, "RS256 needs an RSA public key"},
		{"RS256 with an EC key", acl.JWTOptions{Algorithms: []string{acl.AlgRS256}, PublicKeysPEM: k.ecPEM}, "ES256 is not allowed"},
		{"ES256 without key", acl.JWTOptions{Algorithms: []string{acl.AlgES256}, PublicKeysPEM: k.rsaPEM}, "ES256 needs an ECDSA P-256 public key"},
		{"private key", acl.JWTOptions{Algorithms: []string{acl.AlgES256}, PublicKeysPEM: privPEM}, "is a private key"},
		{"P-384", acl.JWTOptions{Algorithms: []string{acl.AlgES256}, PublicKeysPEM: p384}, "want P-256"},
		{"RSA 1024", acl.JWTOptions{Algorithms: []string{acl.AlgRS256}, PublicKeysPEM: rsa1024}, "want at least 2048"},
		{"not PEM", acl.JWTOptions{Algorithms: []string{acl.AlgRS256}, PublicKeysPEM: []byte("ssh-rsa AAAA")}, "no PEM block"},
		{"bad PEM content", acl.JWTOptions{Algorithms: []string{acl.AlgRS256}, PublicKeysPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("x")})}, "PEM block 1"},
		{"negative leeway", acl.JWTOptions{Algorithms: []string{acl.AlgHS256}, Secret: k.secret, Leeway: -time.Second}, "leeway"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := acl.NewJWTAuth(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), string(k.secret)) {
				t.Errorf("error %q contains the secret", err)
			}
		})
	}
}
