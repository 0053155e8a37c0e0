package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// admin_api.token and admin_api.token_file set broker.Options.AdminToken; bad values name
// their key and never show the token.
func TestAdminAPIConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	if err := os.WriteFile(good, []byte("  file-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		env     []string
		want    string
		problem string
	}{
		{name: "off"},
		{name: "token", env: []string{"ROOMQ_ADMIN_API__TOKEN=env-token-0123456789"}, want: "env-token-0123456789"},
		{name: "file", env: []string{"ROOMQ_ADMIN_API__TOKEN_FILE=" + good}, want: "file-token-0123456789"},
		{name: "both", env: []string{"ROOMQ_ADMIN_API__TOKEN=env-token-0123456789", "ROOMQ_ADMIN_API__TOKEN_FILE=" + good}, problem: "admin_api.token, admin_api.token_file"},
		{name: "short", env: []string{"ROOMQ_ADMIN_API__TOKEN=short"}, problem: "admin_api.token"},
		{name: "empty file", env: []string{"ROOMQ_ADMIN_API__TOKEN_FILE=" + empty}, problem: "admin_api.token_file"},
		{name: "missing file", env: []string{"ROOMQ_ADMIN_API__TOKEN_FILE=" + filepath.Join(dir, "none")}, problem: "admin_api.token_file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := loadConfig(nil, c.env)
			if err != nil {
				t.Fatal(err)
			}
			opts, err := cfg.brokerOptions(nil)
			if c.problem != "" {
				if err == nil || !strings.Contains(err.Error(), c.problem) {
					t.Fatalf("error %v, want one naming %s", err, c.problem)
				}
				if strings.Contains(err.Error(), "0123456789") || (c.name == "short" && strings.Contains(err.Error(), "short")) {
					t.Errorf("the error shows the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if opts.AdminToken != c.want {
				t.Errorf("AdminToken = %q, want %q", opts.AdminToken, c.want)
			}
		})
	}
}
