package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the demo chat page at / and its files (app.js, style.css and the MQTT.js
// bundle at /vendor/mqtt/mqtt.min.js). It answers GET and HEAD only (405 otherwise) and 404
// for unknown paths. Mount it on "/" of a mux whose more specific routes (/mqtt, /healthz)
// take precedence.
func Handler() http.Handler {
	files, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	fileServer := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Cache-Control", "no-cache")
		fileServer.ServeHTTP(w, r)
	})
}

// contentSecurityPolicy lets the page load only its own files, open WebSockets to its own
// host (connect-src 'self' covers ws:// and wss:// of the same origin in current browsers),
// and run MQTT.js's timer worker, which it creates from a blob: URL.
const contentSecurityPolicy = "default-src 'self'; connect-src 'self'; worker-src 'self' blob:; img-src 'self' data:; frame-ancestors 'none'"
