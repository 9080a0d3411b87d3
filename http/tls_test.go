package http

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fheserve/fheserve/internal/testcert"
)

// TestCertificate serves HTTPS with a Certificate, checks that a client
// trusting it connects and that plain HTTP is refused, then renews the
// files and checks that new connections get the new certificate without a
// restart, and that a broken renewal keeps the old one.
func TestCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := testcert.Write(t, certFile, keyFile, 1)
	c, err := LoadCertificate(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }), TLSConfig: c.TLSConfig()}
	go srv.ServeTLS(ln, "", "")
	defer srv.Close()
	url := "https://" + ln.Addr().String() + "/"

	// get connects trusting want only and returns the serial served.
	get := func(want *x509.Certificate) (int64, error) {
		pool := x509.NewCertPool()
		pool.AddCert(want)
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
		resp, err := client.Get(url)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), nil
	}
	if serial, err := get(first); err != nil || serial != 1 {
		t.Fatalf("HTTPS with the first certificate: serial %d, %v", serial, err)
	}
	if resp, err := http.Get("http://" + ln.Addr().String() + "/"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the TLS port: %d, want 400", resp.StatusCode)
		}
	}

	// Renewal: new files, a later modification time.
	second := testcert.Write(t, certFile, keyFile, 2)
	later := time.Now().Add(time.Minute)
	os.Chtimes(certFile, later, later)
	os.Chtimes(keyFile, later, later)
	c.mu.Lock()
	c.checked = time.Time{} // as if certRecheck had passed
	c.mu.Unlock()
	if serial, err := get(second); err != nil || serial != 2 {
		t.Fatalf("after renewal: serial %d, %v; want the new certificate", serial, err)
	}

	// A broken renewal (key missing) keeps serving the last good one.
	os.WriteFile(keyFile, []byte("not a key"), 0o600)
	evenLater := later.Add(time.Minute)
	os.Chtimes(keyFile, evenLater, evenLater)
	c.mu.Lock()
	c.checked = time.Time{}
	c.mu.Unlock()
	if serial, err := get(second); err != nil || serial != 2 {
		t.Fatalf("after a broken renewal: serial %d, %v; want the last good certificate", serial, err)
	}

	// Files that do not make a pair are refused at start with the cause.
	if _, err := LoadCertificate(certFile, keyFile); err == nil {
		t.Error("LoadCertificate accepted a file that is not a key")
	}
	if _, err := LoadCertificate(filepath.Join(dir, "none.pem"), keyFile); err == nil {
		t.Error("LoadCertificate accepted a missing file")
	}
}
