// Package adminapi serves the admin HTTP API under /api/ (docs/api.md): JSON endpoints over
// the server-side API of package commands, behind a bearer token. It owns the HTTP mapping —
// routes, token check, body limits, status codes for wire error codes — and nothing of what
// the commands do.
package adminapi
