package acl

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/roomq/roomq/wire"
)

// The JWT signature algorithms JWTAuth verifies (RFC 7518). "none" is never accepted.
const (
	// AlgHS256 is HMAC with SHA-256, verified with a shared secret.
	AlgHS256 = "HS256"
	// AlgRS256 is RSASSA-PKCS1-v1_5 with SHA-256, verified with an RSA public key.
	AlgRS256 = "RS256"
	// AlgES256 is ECDSA on the P-256 curve with SHA-256, verified with an ECDSA public key.
	AlgES256 = "ES256"
)

// Defaults and limits of JWTOptions.
const (
	// DefaultJWTQueryParam is the query parameter the broker's configuration reads WebSocket
	// tokens from by default.
	DefaultJWTQueryParam = "token"
	// DefaultJWTRolesClaim is the claim holding the roles when JWTOptions.RolesClaim is "".
	DefaultJWTRolesClaim = "roles"
	// DefaultJWTLeeway is the clock skew allowed on exp and nbf when JWTOptions.Leeway is 0.
	DefaultJWTLeeway = 10 * time.Second
	// MinJWTSecretLen is the shortest HS256 secret accepted, in bytes: a key as long as the
	// hash output, as RFC 7518 section 3.2 requires.
	MinJWTSecretLen = 32
	// minRSABits is the smallest RSA key accepted.
	minRSABits = 2048
)

// jwtAlgorithms are the algorithms JWTOptions.Algorithms may name.
var jwtAlgorithms = []string{AlgHS256, AlgRS256, AlgES256}

// JWTOptions configure a JWTAuth.
type JWTOptions struct {
	// Algorithms lists the accepted signature algorithms: one or more of AlgHS256, AlgRS256
	// and AlgES256. A token signed with any other, "none" included, is refused. Each listed
	// algorithm needs its key below, and no key may be given for an algorithm not listed.
	// Required.
	Algorithms []string
	// Secret is the HS256 key, at least MinJWTSecretLen bytes.
	Secret []byte
	// PublicKeysPEM holds the keys that verify RS256 and ES256 tokens: one or more PEM blocks,
	// each a PKIX "PUBLIC KEY", a PKCS #1 "RSA PUBLIC KEY" or a "CERTIFICATE". RSA keys have
	// at least 2048 bits, ECDSA keys are on P-256. A token is accepted when one key of its
	// algorithm verifies it, so several keys allow a rotation.
	PublicKeysPEM []byte
	// Issuer, when set, must equal the token's iss claim.
	Issuer string
	// Audience, when set, must be one of the token's aud claim.
	Audience string
	// QueryParam names the query parameter of a WebSocket upgrade request that carries the
	// token when the MQTT password is empty; "" means the query is not read.
	QueryParam string
	// Cookie names the cookie of a WebSocket upgrade request that carries the token when the
	// MQTT password and the query parameter are empty; "" means cookies are not read.
	Cookie string
	// RolesClaim names the claim holding the user's roles, an array of strings; "" means
	// DefaultJWTRolesClaim.
	RolesClaim string
	// Leeway is the clock skew allowed when checking exp and nbf; 0 means DefaultJWTLeeway.
	Leeway time.Duration
}

// JWTAuth authenticates clients with signed JSON Web Tokens (RFC 7519). It is safe for
// concurrent use. Build it with NewJWTAuth.
//
// The token is the MQTT password; when the password is empty, a WebSocket client's token is
// taken from the query parameter JWTOptions.QueryParam, else from the cookie
// JWTOptions.Cookie. The token must carry a valid signature by an allowed algorithm, an exp
// claim that has not passed, no nbf claim in the future, and the issuer and audience
// configured. Its sub claim is the user; a CONNECT user name, when given, must equal it. The
// roles claim, when present, must be an array of role names.
type JWTAuth struct {
	parser     *jwt.Parser
	secret     []byte
	rsaKeys    []*rsa.PublicKey
	ecKeys     []*ecdsa.PublicKey
	queryParam string
	cookie     string
	rolesClaim string
}

var _ Authenticator = (*JWTAuth)(nil)

// NewJWTAuth validates opts and returns the authenticator.
func NewJWTAuth(opts JWTOptions) (*JWTAuth, error) {
	a := &JWTAuth{queryParam: opts.QueryParam, cookie: opts.Cookie, rolesClaim: opts.RolesClaim}
	if a.rolesClaim == "" {
		a.rolesClaim = DefaultJWTRolesClaim
	}
	leeway := opts.Leeway
	if leeway == 0 {
		leeway = DefaultJWTLeeway
	}
	var errs []error
	if leeway < 0 {
		errs = append(errs, fmt.Errorf("leeway must not be negative, got %s", opts.Leeway))
	}
	if len(opts.Algorithms) == 0 {
		errs = append(errs, fmt.Errorf("no algorithm allowed (want one or more of %s)", strings.Join(jwtAlgorithms, ", ")))
	}
	for _, alg := range opts.Algorithms {
		if !slices.Contains(jwtAlgorithms, alg) {
			errs = append(errs, fmt.Errorf("unsupported algorithm %q (want %s)", alg, strings.Join(jwtAlgorithms, ", ")))
		}
	}
	allowed := func(alg string) bool { return slices.Contains(opts.Algorithms, alg) }

	switch {
	case allowed(AlgHS256) && len(opts.Secret) < MinJWTSecretLen:
		errs = append(errs, fmt.Errorf("HS256 needs a secret of at least %d bytes, got %d", MinJWTSecretLen, len(opts.Secret)))
	case !allowed(AlgHS256) && len(opts.Secret) > 0:
		errs = append(errs, errors.New("a secret is given but HS256 is not allowed"))
	default:
		a.secret = bytes.Clone(opts.Secret)
	}

	var err error
	a.rsaKeys, a.ecKeys, err = parsePublicKeys(opts.PublicKeysPEM)
	if err != nil {
		errs = append(errs, err)
	}
	for _, k := range []struct {
		alg  string
		kind string
		n    int
	}{{AlgRS256, "RSA", len(a.rsaKeys)}, {AlgES256, "ECDSA P-256", len(a.ecKeys)}} {
		if allowed(k.alg) && k.n == 0 && err == nil {
			errs = append(errs, fmt.Errorf("%s needs an %s public key", k.alg, k.kind))
		}
		if !allowed(k.alg) && k.n > 0 {
			errs = append(errs, fmt.Errorf("an %s public key is given but %s is not allowed", k.kind, k.alg))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("jwt auth: %w", err)
	}

	popts := []jwt.ParserOption{
		jwt.WithValidMethods(slices.Clone(opts.Algorithms)),
		jwt.WithLeeway(leeway),
		jwt.WithExpirationRequired(),
	}
	if opts.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(opts.Issuer))
	}
	if opts.Audience != "" {
		popts = append(popts, jwt.WithAudience(opts.Audience))
	}
	a.parser = jwt.NewParser(popts...)
	return a, nil
}

// parsePublicKeys reads the RSA and ECDSA P-256 public keys of the PEM blocks in data.
func parsePublicKeys(data []byte) ([]*rsa.PublicKey, []*ecdsa.PublicKey, error) {
	var rsaKeys []*rsa.PublicKey
	var ecKeys []*ecdsa.PublicKey
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var key any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE") {
				return nil, nil, fmt.Errorf("public key PEM block %d is a private key; give the public key only", n)
			}
			return nil, nil, fmt.Errorf("public key PEM block %d has type %q, want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", n, block.Type)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("public key PEM block %d: %w", n, err)
		}
		switch k := key.(type) {
		case *rsa.PublicKey:
			if k.N.BitLen() < minRSABits {
				return nil, nil, fmt.Errorf("public key PEM block %d: RSA key of %d bits, want at least %d", n, k.N.BitLen(), minRSABits)
			}
			rsaKeys = append(rsaKeys, k)
		case *ecdsa.PublicKey:
			if k.Curve != elliptic.P256() {
				return nil, nil, fmt.Errorf("public key PEM block %d: ECDSA key on %s, want P-256 (ES256)", n, k.Curve.Params().Name)
			}
			ecKeys = append(ecKeys, k)
		default:
			return nil, nil, fmt.Errorf("public key PEM block %d: %T keys are not supported (want RSA or ECDSA P-256)", n, key)
		}
	}
	if len(rsaKeys)+len(ecKeys) == 0 && len(bytes.TrimSpace(data)) > 0 {
		return nil, nil, errors.New("public keys: no PEM block found")
	}
	return rsaKeys, ecKeys, nil
}

// Authenticate implements Authenticator.
func (a *JWTAuth) Authenticate(_ context.Context, creds Credentials) (Identity, error) {
	raw := a.token(creds)
	if raw == "" {
		return Identity{}, fmt.Errorf("%w: no token", ErrBadCredentials)
	}
	claims := jwt.MapClaims{}
	if _, err := a.parser.ParseWithClaims(raw, claims, a.key); err != nil {
		// jwt's errors name the failed check, never the token.
		return Identity{}, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	sub, err := claims.GetSubject()
	if err != nil || !wire.ValidName(sub) {
		return Identity{}, fmt.Errorf("%w: the token's sub claim is not a valid user name", ErrBadCredentials)
	}
	if creds.Username != "" && creds.Username != sub {
		return Identity{}, fmt.Errorf("%w: the user name is not the token's subject", ErrBadCredentials)
	}
	roles, err := a.roles(claims)
	if err != nil {
		return Identity{}, err
	}
	return Identity{User: sub, Roles: roles}, nil
}

// token returns the token creds carry: the password, else the query parameter, else the
// cookie. A wrong password is not made up for by a good cookie.
func (a *JWTAuth) token(creds Credentials) string {
	if len(creds.Password) > 0 {
		return string(creds.Password)
	}
	if a.queryParam != "" {
		if t := creds.Query.Get(a.queryParam); t != "" {
			return t
		}
	}
	if a.cookie != "" {
		return creds.Cookies[a.cookie]
	}
	return ""
}

// key returns the keys that may verify t. The parser has checked that t's algorithm is
// allowed; matching on the method's type as well means a key is only ever used with its own
// kind of algorithm (an RSA public key is never taken for an HMAC secret).
func (a *JWTAuth) key(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if a.secret != nil {
			return a.secret, nil
		}
	case *jwt.SigningMethodRSA:
		if len(a.rsaKeys) > 0 {
			return keySet(a.rsaKeys), nil
		}
	case *jwt.SigningMethodECDSA:
		if len(a.ecKeys) > 0 {
			return keySet(a.ecKeys), nil
		}
	}
	return nil, errors.New("no key for the token's algorithm")
}

// keySet returns the keys as the parser takes them.
func keySet[K any](keys []K) jwt.VerificationKeySet {
	set := jwt.VerificationKeySet{Keys: make([]jwt.VerificationKey, len(keys))}
	for i, k := range keys {
		set.Keys[i] = k
	}
	return set
}

// roles reads the roles claim: absent or null means none; otherwise an array of role names.
func (a *JWTAuth) roles(claims jwt.MapClaims) ([]string, error) {
	v, ok := claims[a.rolesClaim]
	if !ok || v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: the token's %s claim is not an array", ErrBadCredentials, a.rolesClaim)
	}
	roles := make([]string, 0, len(list))
	for _, r := range list {
		s, ok := r.(string)
		if !ok || !wire.ValidName(s) {
			return nil, fmt.Errorf("%w: the token's %s claim holds an invalid role", ErrBadCredentials, a.rolesClaim)
		}
		roles = append(roles, s)
	}
	return roles, nil
}
