package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// tlsMinVersions maps the values of tls.min_version onto crypto/tls versions. Older versions
// are not offered: TLS 1.0 and 1.1 are deprecated (RFC 8996).
var tlsMinVersions = map[string]uint16{
	tlsVersion12: tls.VersionTLS12,
	tlsVersion13: tls.VersionTLS13,
}

// tlsConfig checks the TLS settings (the tls section, mqtt.tls_addr, http.tls) and, when a
// listener uses TLS, loads the certificate and key the tls section names. It returns nil
// without TLS and when it added problems to ps. Errors name the key and the file, never what
// the file holds.
func (c config) tlsConfig(ps *problems) *tls.Config {
	n := len(*ps)
	t := c.TLS
	minVersion, ok := tlsMinVersions[t.MinVersion]
	if !ok {
		ps.addf("tls.min_version", "unsupported version %q (want %q or %q)", t.MinVersion, tlsVersion12, tlsVersion13)
	}
	var users []string
	if c.MQTT.TLSAddr != "" {
		users = append(users, "mqtt.tls_addr is set")
	}
	if c.HTTP.TLS {
		users = append(users, "http.tls is true")
		if c.HTTP.Addr == "" {
			ps.addf("http.tls", "is true, but http.addr is empty: there is no HTTP listener to serve with TLS")
		}
	}
	if len(users) == 0 {
		// Certificates that no listener uses are a mistake: TLS is not on.
		for _, f := range []struct{ key, path string }{{"tls.cert_file", t.CertFile}, {"tls.key_file", t.KeyFile}} {
			if f.path != "" {
				ps.addf(f.key, "is set, but no listener uses TLS (set mqtt.tls_addr or http.tls)")
			}
		}
		return nil
	}
	why := strings.Join(users, " and ")
	if t.CertFile == "" {
		ps.addf("tls.cert_file", "required when %s", why)
	}
	if t.KeyFile == "" {
		ps.addf("tls.key_file", "required when %s", why)
	}
	if len(*ps) > n {
		return nil
	}
	cert, ok := loadKeyPair(ps, t.CertFile, t.KeyFile)
	if !ok {
		return nil
	}
	// No NextProtos: the MQTT listener shares this configuration, and a server that lists
	// protocols refuses clients that offer others through ALPN. HTTPS serves HTTP/1.1, which
	// is what WebSocket upgrades need.
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: minVersion}
}

// loadKeyPair reads a PEM certificate chain and its private key, as tls.LoadX509KeyPair does,
// adding to ps problems that say which file is wrong (tls.cert_file or tls.key_file) and name
// it, but never quote it.
func loadKeyPair(ps *problems, certFile, keyFile string) (tls.Certificate, bool) {
	n := len(*ps)
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		ps.addf("tls.cert_file", "%v", err) // names the file
	} else if err := checkCertificates(certPEM); err != nil {
		ps.addf("tls.cert_file", "%s: %v", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		ps.addf("tls.key_file", "%v", err)
	}
	if len(*ps) > n {
		return tls.Certificate{}, false
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// The certificates parse, so the key is what is wrong. crypto/tls names the problem
		// (no key block, an unparsable key, the key of another certificate), not the key.
		ps.addf("tls.key_file", "%s is not the private key of the certificate in %s: %v", keyFile, certFile, err)
		return tls.Certificate{}, false
	}
	return cert, true
}

// checkCertificates checks that data holds PEM CERTIFICATE blocks that parse, the first being
// the server's certificate. Its errors tell the PEM block types found, not their content.
func checkCertificates(data []byte) error {
	var types []string
	certs := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			types = append(types, block.Type)
			continue
		}
		certs++
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d does not parse: %w", certs, err)
		}
	}
	switch {
	case certs > 0:
		return nil
	case len(types) == 0:
		return errors.New("no PEM data; want the certificate chain in PEM (-----BEGIN CERTIFICATE-----)")
	}
	return fmt.Errorf("no PEM CERTIFICATE block (found %s); want the certificate chain in PEM, the server's certificate first", strings.Join(types, ", "))
}
