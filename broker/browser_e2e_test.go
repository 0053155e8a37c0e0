package broker_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roomq/roomq/internal/mqtttest"
)

// The demo chat page and the MQTT.js bundle are served on /, next to /mqtt and the health
// endpoints.
func TestDemoPageServed(t *testing.T) {
	b := mqtttest.StartBroker(t, nil)
	for _, tc := range []struct {
		method, path string
		status       int
		contains     string
	}{
		{"GET", "/", http.StatusOK, "<title>roomq chat</title>"},
		{"GET", "/vendor/mqtt/mqtt.min.js", http.StatusOK, "mqtt"},
		{"GET", "/healthz", http.StatusOK, "ok"},
		{"GET", "/readyz", http.StatusOK, "ready"},
		{"GET", "/mqtt", http.StatusBadRequest, ""}, // the WebSocket listener: not an upgrade
		{"POST", "/", http.StatusMethodNotAllowed, ""},
	} {
		req, err := http.NewRequest(tc.method, "http://"+b.HTTPAddr()+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.contains) {
			t.Errorf("%s %s: %d %.80q, want %d with %q", tc.method, tc.path, resp.StatusCode, body, tc.status, tc.contains)
		}
	}
}

// TestBrowserChat drives the demo chat page in headless Chromium with Playwright
// (web/browsertest/chat.test.mjs): two users exchange room and direct messages, see each
// other's presence, resume after a lost connection and get their history back after a reload.
// It skips when Chromium, node or web/browsertest/node_modules is missing, unless
// ROOMQ_TEST_BROWSER is set (scripts/test sets it after installing them), then it fails.
// Screenshots go to $ROOMQ_TEST_BROWSER_ARTIFACTS (default web/browsertest/artifacts).
func TestBrowserChat(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "web", "browsertest"))
	if err != nil {
		t.Fatal(err)
	}
	chromium := os.Getenv("ROOMQ_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	var missing []string
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, chromium)
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		missing = append(missing, "web/browsertest/node_modules (npm ci --prefix web/browsertest)")
	}
	if len(missing) > 0 {
		if os.Getenv("ROOMQ_TEST_BROWSER") == "" {
			t.Skipf("browser test needs %s; scripts/test installs them", strings.Join(missing, ", "))
		}
		t.Fatalf("ROOMQ_TEST_BROWSER is set but %s missing", strings.Join(missing, ", "))
	}
	artifacts := os.Getenv("ROOMQ_TEST_BROWSER_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join(dir, "artifacts")
	}

	b := mqtttest.StartBroker(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "chat.test.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"ROOMQ_URL=http://"+b.HTTPAddr()+"/",
		"ROOMQ_CHROMIUM="+chromium,
		"ROOMQ_ARTIFACTS="+artifacts,
	)
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("chat.test.mjs (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		t.Fatalf("chat.test.mjs failed (exit code %d); its last lines above say why", exit.ExitCode())
	case err != nil:
		t.Fatalf("chat.test.mjs: %v", err)
	}
}
