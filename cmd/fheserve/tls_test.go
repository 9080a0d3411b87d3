package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fheserve/fheserve/internal/testcert"
	"github.com/fheserve/fheserve/sdk"
)

// TestServeTLS serves HTTPS with --tls-cert and --tls-key and runs client
// verbs against it: a client that trusts the certificate logs in; one that
// does not is refused with a one-line error naming the cause and the fix,
// and sends no password. (SSL_CERT_FILE is read once per process: the
// trusting client gets the certificate through its HTTP client instead.)
func TestServeTLS(t *testing.T) {
	data, certs := t.TempDir(), t.TempDir()
	certFile, keyFile := filepath.Join(certs, "cert.pem"), filepath.Join(certs, "key.pem")
	cert := testcert.Write(t, certFile, keyFile, 1)
	admin := newParty(t, "")
	admin.ok("root-password\n", "admin", "init", "--data-dir", data, "--username", "root", "--password-stdin")
	url := serveInProcess(t, data, "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("serving on %s, want https://127.0.0.1:...", url)
	}

	untrusting := newParty(t, url)
	r := untrusting.run("root-password\n", "login", "--username", "root", "--password-stdin")
	mustFail(t, r, 1, "certificate")
	if strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("the error is not one line:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "SSL_CERT_FILE") {
		t.Errorf("the error does not say how to trust the certificate:\n%s", r.stderr)
	}

	trusting := newParty(t, url)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	trusting.client = func(url string) *sdk.Client {
		c := sdk.New(url)
		c.API.HTTP = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
		return c
	}
	trusting.ok("root-password\n", "login", "--username", "root", "--password-stdin")
	if out := trusting.ok("", "admin", "pending", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("admin pending over HTTPS: %q", out)
	}
}
