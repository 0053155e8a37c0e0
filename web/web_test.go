package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/roomq/roomq/web"
)

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		status       int
		contentType  string
		contains     string
	}{
		{"GET", "/", http.StatusOK, "text/html", `<script src="app.js"`},
		{"HEAD", "/", http.StatusOK, "text/html", ""},
		{"GET", "/app.js", http.StatusOK, "javascript", "protocolVersion: 5"},
		{"GET", "/style.css", http.StatusOK, "text/css", ""},
		{"GET", "/vendor/mqtt/mqtt.min.js", http.StatusOK, "javascript", "mqtt"},
		{"GET", "/vendor/mqtt/LICENSE.md", http.StatusOK, "", "MIT License"},
		{"GET", "/nope", http.StatusNotFound, "", ""},
		{"POST", "/", http.StatusMethodNotAllowed, "", ""},
	} {
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, tc.contentType) {
			t.Errorf("%s %s: Content-Type %q, want %q", tc.method, tc.path, ct, tc.contentType)
		}
		if !strings.Contains(string(body), tc.contains) {
			t.Errorf("%s %s: body does not contain %q", tc.method, tc.path, tc.contains)
		}
	}
}
