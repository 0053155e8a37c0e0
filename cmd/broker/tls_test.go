package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/roomq/roomq/internal/tlstest"
)

// testCert writes a new self-signed certificate for 127.0.0.1 and localhost and its key into
// dir, as PEM files, and returns their paths and a pool that trusts the certificate.
func testCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	c := tlstest.New(t)
	certFile = writeTemp(t, dir, "cert.pem", string(c.CertPEM))
	keyFile = writeTemp(t, dir, "key.pem", string(c.KeyPEM))
	return certFile, keyFile, c.Pool
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := testCert(t, dir)
	want, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	tlsEnv := []string{"ROOMQ_TLS__CERT_FILE=" + certFile, "ROOMQ_TLS__KEY_FILE=" + keyFile}
	tests := []struct {
		name       string
		file       string
		mqttTLS    string
		https      bool
		minVersion uint16
	}{
		{name: "mqtt", file: "mqtt: {tls_addr: ':8883'}", mqttTLS: ":8883", minVersion: tls.VersionTLS12},
		{name: "https", file: "http: {tls: true}", https: true, minVersion: tls.VersionTLS12},
		{
			name:    "both, TLS 1.3",
			file:    "mqtt: {addr: '', tls_addr: '127.0.0.1:8883'}\nhttp: {tls: true}\ntls: {min_version: '1.3'}",
			mqttTLS: "127.0.0.1:8883", https: true, minVersion: tls.VersionTLS13,
		},
		{name: "unquoted version", file: "http: {tls: true}\ntls: {min_version: 1.2}", https: true, minVersion: tls.VersionTLS12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, o, err := load(t, tt.file, tlsEnv)
			if err != nil {
				t.Fatal(err)
			}
			check(t, "MQTTTLSAddr", o.MQTTTLSAddr, tt.mqttTLS)
			check(t, "HTTPTLS", o.HTTPTLS, tt.https)
			if o.TLS == nil {
				t.Fatal("TLS = nil")
			}
			check(t, "TLS.MinVersion", o.TLS.MinVersion, tt.minVersion)
			if len(o.TLS.Certificates) != 1 || !reflect.DeepEqual(o.TLS.Certificates[0].Certificate, want.Certificate) {
				t.Errorf("TLS.Certificates = %d certificates, want the one of %s", len(o.TLS.Certificates), certFile)
			}
		})
	}
	// Without a TLS listener, no TLS.
	_, o, err := load(t, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.TLS != nil || o.MQTTTLSAddr != "" || o.HTTPTLS {
		t.Errorf("TLS on by default: %v %q %v", o.TLS, o.MQTTTLSAddr, o.HTTPTLS)
	}
}

func TestTLSFiles(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := testCert(t, dir)
	otherDir := t.TempDir()
	_, otherKey, _ := testCert(t, otherDir)
	const secret = "c2VjcmV0LWtleS1tYXRlcmlhbA==" // valid base64; must never appear in an error
	garbageKey := writeTemp(t, dir, "garbage-key.pem", "-----BEGIN PRIVATE KEY-----\n"+secret+"\n-----END PRIVATE KEY-----\n")
	plainKey := writeTemp(t, dir, "plain-key.txt", secret+"\n")
	badCert := writeTemp(t, dir, "bad-cert.pem", "-----BEGIN CERTIFICATE-----\n"+secret+"\n-----END CERTIFICATE-----\n")
	keyData, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name       string
		cert, key  string
		want       []string
		notWanting []string
	}{
		{name: "missing cert", cert: missing, key: keyFile, want: []string{"tls.cert_file", missing, "no such file"}},
		{name: "missing key", cert: certFile, key: missing, want: []string{"tls.key_file", missing, "no such file"}},
		{name: "both missing", cert: missing + "1", key: missing + "2", want: []string{"tls.cert_file", "tls.key_file", missing + "1", missing + "2"}},
		{name: "directory", cert: dir, key: keyFile, want: []string{"tls.cert_file", dir}},
		{name: "key as cert", cert: keyFile, key: keyFile, want: []string{"tls.cert_file", keyFile, "no PEM CERTIFICATE block (found PRIVATE KEY)"}},
		{name: "cert not PEM", cert: plainKey, key: keyFile, want: []string{"tls.cert_file", plainKey, "no PEM data"}},
		{name: "cert does not parse", cert: badCert, key: keyFile, want: []string{"tls.cert_file", badCert, "does not parse"}},
		{name: "cert as key", cert: certFile, key: certFile, want: []string{"tls.key_file", certFile}},
		{name: "key not PEM", cert: certFile, key: plainKey, want: []string{"tls.key_file", plainKey}},
		{name: "key does not parse", cert: certFile, key: garbageKey, want: []string{"tls.key_file", garbageKey}},
		{name: "key of another cert", cert: certFile, key: otherKey, want: []string{"tls.key_file", otherKey, "not the private key of the certificate in " + certFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := load(t, "mqtt: {tls_addr: ':8883'}", []string{"ROOMQ_TLS__CERT_FILE=" + tt.cert, "ROOMQ_TLS__KEY_FILE=" + tt.key})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, leak := range []string{secret, string(keyData[30:60]), "-----END"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q shows what a file holds (%q)", err, leak)
				}
			}
		})
	}
}
