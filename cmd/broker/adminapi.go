package main

import (
	"os"
	"strings"
)

// minAdminTokenLength is the shortest admin API token accepted: a guessable token would open
// every room and user to whoever guesses it.
const minAdminTokenLength = 16

// adminAPIConfig configures the admin HTTP API under /api/ (docs/api.md). Without a token the
// API is off.
type adminAPIConfig struct {
	Token     string `koanf:"token"`
	TokenFile string `koanf:"token_file"`
}

// token checks the section and returns the bearer token, "" when the API is off. The token is
// never put in a problem.
func (a adminAPIConfig) token(ps *problems) string {
	token, key := a.Token, "admin_api.token"
	switch {
	case a.Token != "" && a.TokenFile != "":
		ps.addf("admin_api.token, admin_api.token_file", "set one of them, not both")
		return ""
	case a.TokenFile != "":
		key = "admin_api.token_file"
		data, err := os.ReadFile(a.TokenFile)
		if err != nil {
			ps.addf(key, "%v", err)
			return ""
		}
		token = strings.TrimSpace(string(data))
		if token == "" {
			ps.addf(key, "%s is empty", a.TokenFile)
			return ""
		}
	case a.Token == "":
		return ""
	}
	if len(token) < minAdminTokenLength || strings.ContainsAny(token, " \t\r\n") {
		ps.addf(key, "the token must be at least %d characters, without spaces", minAdminTokenLength)
		return ""
	}
	return token
}
