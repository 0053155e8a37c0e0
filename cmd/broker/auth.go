package main

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/roomq/roomq/acl"
)

// jwtAlgorithms are the values auth.jwt.algorithms may list.
var jwtAlgorithms = []string{acl.AlgHS256, acl.AlgRS256, acl.AlgES256}

// authenticator checks the auth section and builds the authenticator of auth.mode, reading
// the files it names. It returns nil for mode none (the broker's development authenticator)
// and when it added problems to ps.
func (a authConfig) authenticator(ps *problems) acl.Authenticator {
	switch a.Mode {
	case authModeNone:
		return nil
	case authModeStatic:
		return a.Static.authenticator(ps)
	case authModeJWT:
		return a.JWT.authenticator(ps)
	case authModeHTTP:
		return a.HTTP.authenticator(ps)
	}
	ps.addf("auth.mode", "unsupported mode %q (supported: %s)", a.Mode, strings.Join(authModes, ", "))
	return nil
}

func (s staticAuthConfig) authenticator(ps *problems) acl.Authenticator {
	const key = "auth.static.file"
	if s.File == "" {
		ps.addf(key, "required when auth.mode is static (create one with: broker passwd --file FILE --user NAME)")
		return nil
	}
	data, err := os.ReadFile(s.File)
	if err != nil {
		ps.addf(key, "%v", err)
		return nil
	}
	users, err := acl.ParseStaticUsers(data)
	if err != nil {
		ps.addf(key, "%s: %v", s.File, err)
		return nil
	}
	if len(users) == 0 {
		ps.addf(key, "%s lists no users, so nobody could connect (add one with: broker passwd --file %s --user NAME)", s.File, s.File)
		return nil
	}
	a, err := acl.NewStaticAuth(users)
	if err != nil {
		ps.addf(key, "%s: %v", s.File, err)
		return nil
	}
	return a
}

func (j jwtAuthConfig) authenticator(ps *problems) acl.Authenticator {
	n := len(*ps)
	if len(j.Algorithms) == 0 {
		ps.addf("auth.jwt.algorithms", "list at least one of %s when auth.mode is jwt", strings.Join(jwtAlgorithms, ", "))
	}
	for i, alg := range j.Algorithms {
		if !slices.Contains(jwtAlgorithms, alg) {
			ps.addf(fmt.Sprintf("auth.jwt.algorithms[%d]", i), "unsupported algorithm %q (want %s; \"none\" is never accepted)", alg, strings.Join(jwtAlgorithms, ", "))
		}
	}
	hs := slices.Contains(j.Algorithms, acl.AlgHS256)
	asymmetric := slices.Contains(j.Algorithms, acl.AlgRS256) || slices.Contains(j.Algorithms, acl.AlgES256)

	secret, secretKey := []byte(j.Secret), "auth.jwt.secret"
	switch {
	case j.Secret != "" && j.SecretFile != "":
		ps.addf("auth.jwt.secret, auth.jwt.secret_file", "set one of them, not both")
	case j.SecretFile != "":
		secretKey = "auth.jwt.secret_file"
		data, err := os.ReadFile(j.SecretFile)
		if err != nil {
			ps.addf(secretKey, "%v", err)
			secretKey = "" // reported
			break
		}
		secret = bytes.TrimRight(data, "\r\n") // the newline editors add is not part of it
	}
	switch {
	case secretKey == "":
	case hs && len(secret) == 0:
		ps.addf("auth.jwt.secret", "required when auth.jwt.algorithms lists HS256 (or set auth.jwt.secret_file)")
	case hs && len(secret) < acl.MinJWTSecretLen:
		ps.addf(secretKey, "must be at least %d bytes for HS256, got %d", acl.MinJWTSecretLen, len(secret))
	case !hs && len(secret) > 0:
		ps.addf(secretKey, "is set, but auth.jwt.algorithms does not list HS256")
	}

	var keys []byte
	switch {
	case asymmetric && j.PublicKeyFile == "":
		ps.addf("auth.jwt.public_key_file", "required when auth.jwt.algorithms lists RS256 or ES256")
	case !asymmetric && j.PublicKeyFile != "":
		ps.addf("auth.jwt.public_key_file", "is set, but auth.jwt.algorithms lists neither RS256 nor ES256")
	case j.PublicKeyFile != "":
		data, err := os.ReadFile(j.PublicKeyFile)
		if err != nil {
			ps.addf("auth.jwt.public_key_file", "%v", err)
		}
		keys = data
	}
	if j.QueryParam != "" && !validURLParam(j.QueryParam) {
		ps.addf("auth.jwt.query_param", "%q is not a plain query parameter name", j.QueryParam)
	}
	if j.Cookie != "" && !validCookieName(j.Cookie) {
		ps.addf("auth.jwt.cookie", "%q is not a valid cookie name", j.Cookie)
	}
	if len(*ps) > n {
		return nil
	}
	a, err := acl.NewJWTAuth(acl.JWTOptions{
		Algorithms:    j.Algorithms,
		Secret:        secret,
		PublicKeysPEM: keys,
		Issuer:        j.Issuer,
		Audience:      j.Audience,
		QueryParam:    j.QueryParam,
		Cookie:        j.Cookie,
		RolesClaim:    j.RolesClaim,
	})
	if err != nil {
		// What is left to go wrong is the content of the key file.
		ps.addf("auth.jwt.public_key_file", "%s: %v", j.PublicKeyFile, err)
		return nil
	}
	return a
}

func (h httpAuthConfig) authenticator(ps *problems) acl.Authenticator {
	n := len(*ps)
	if u, err := url.Parse(h.URL); h.URL == "" {
		ps.addf("auth.http.url", "required when auth.mode is http")
	} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// Not the URL itself: it may hold a key.
		ps.addf("auth.http.url", "want an absolute http:// or https:// URL")
	}
	if h.Timeout <= 0 {
		ps.addf("auth.http.timeout", "must be positive, got %s", h.Timeout)
	}
	if h.CacheTTL < 0 {
		ps.addf("auth.http.cache_ttl", "must not be negative (0s disables the cache), got %s", h.CacheTTL)
	}
	if len(*ps) > n {
		return nil
	}
	ttl := h.CacheTTL
	if ttl == 0 {
		ttl = -1 // acl: a negative TTL disables the cache
	}
	a, err := acl.NewHTTPAuth(acl.HTTPOptions{URL: h.URL, Timeout: h.Timeout, CacheTTL: ttl})
	if err != nil {
		ps.addf("auth.http", "%v", err) // unexpected: every value was checked
		return nil
	}
	return a
}

// validURLParam reports whether name can be written in a query string as it is.
func validURLParam(name string) bool {
	return url.QueryEscape(name) == name
}

// validCookieName reports whether name is an HTTP token (RFC 6265 section 4.1.1).
func validCookieName(name string) bool {
	for _, r := range name {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return false
		}
	}
	return true
}
