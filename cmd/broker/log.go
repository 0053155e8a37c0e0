package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Log keys of the binary.
const (
	logKeyFile  = "file"
	logKeyEnv   = "env"
	logKeyGrace = "grace"
	// logKeyAuthMode is auth.mode; never log the auth settings themselves (secrets).
	logKeyAuthMode = "auth_mode"
	// logKeyStore is store.type.
	logKeyStore = "store"
	// logKeyMQTTTLS is the address of the MQTT over TLS listener, "" without one.
	logKeyMQTTTLS = "mqtt_tls"
	// logKeyHTTPS tells whether HTTP is served with TLS.
	logKeyHTTPS = "https"
	// logKeyTLSMin is tls.min_version.
	logKeyTLSMin = "tls_min_version"
)

// newLogger returns a logger writing to w at level ("debug", "info", "warn" or "error") in
// format ("text" or "json"). Both are case-insensitive.
func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	lvl, err := parseLogLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	f, err := parseLogFormat(format)
	if err != nil {
		return nil, fmt.Errorf("log format: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if f == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown level %q (want debug, info, warn or error)", s)
}

func parseLogFormat(s string) (string, error) {
	switch f := strings.ToLower(s); f {
	case "text", "json":
		return f, nil
	}
	return "", fmt.Errorf("unknown format %q (want text or json)", s)
}
