package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/fheserve/fheserve/internal/testcert"
)

// TestServeTLS serves HTTPS with --tls-cert and --tls-key and runs client
// verbs against it: a client that trusts the certificate (SSL_CERT_FILE,
// read once per process, hence the binary) logs in; one that does not is
// refused with a one-line error naming the cause and the fix, and sends
// no password.
func TestServeTLS(t *testing.T) {
	data, certs := t.TempDir(), t.TempDir()
	certFile, keyFile := filepath.Join(certs, "cert.pem"), filepath.Join(certs, "key.pem")
	testcert.Write(t, certFile, keyFile, 1)
	admin := &party{t: t, home: t.TempDir()}
	admin.ok("root-password\n", "admin", "init", "--data-dir", data, "--username", "root", "--password-stdin")
	s := startServer(t, data, "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(s.url, "https://127.0.0.1:") {
		t.Fatalf("serving on %s, want https://127.0.0.1:...", s.url)
	}

	untrusting := newParty(t, s)
	r := untrusting.run("root-password\n", "login", "--username", "root", "--password-stdin")
	mustFail(t, r, 1, "certificate")
	if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("the error is not one line:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "SSL_CERT_FILE") {
		t.Errorf("the error does not say how to trust the certificate:\n%s", r.stderr)
	}

	trusting := newParty(t, s)
	trusting.env = []string{"SSL_CERT_FILE=" + certFile}
	trusting.ok("root-password\n", "login", "--username", "root", "--password-stdin")
	if out := trusting.ok("", "admin", "pending", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("admin pending over HTTPS: %q", out)
	}
}
