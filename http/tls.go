package http

import (
	"crypto/tls"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/fheserve/fheserve"
)

// A Certificate serves a certificate and key from PEM files and reloads
// them when either file changes, so that a renewed certificate (say from
// an ACME client that rewrites the files) is used without a restart. A
// reload that fails keeps the certificate in use.
type Certificate struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]time.Time // modification times of the files loaded
	checked time.Time
}

// certRecheck is how often the files' modification times are looked at.
const certRecheck = 10 * time.Second

// LoadCertificate loads certFile and keyFile (PEM), or says why it cannot.
func LoadCertificate(certFile, keyFile string) (*Certificate, error) {
	c := &Certificate{certFile: certFile, keyFile: keyFile}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Certificate) load() error {
	stamp, err := c.stamps()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fheserve.Errorf(fheserve.EINVALID, "cannot use the TLS certificate %s with the key %s: %v", c.certFile, c.keyFile, err)
	}
	c.cert, c.stamp = &cert, stamp
	return nil
}

func (c *Certificate) stamps() ([2]time.Time, error) {
	var out [2]time.Time
	for i, f := range []string{c.certFile, c.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return out, fheserve.Errorf(fheserve.EINVALID, "cannot read the TLS file %s: %v", f, err)
		}
		out[i] = st.ModTime()
	}
	return out, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (c *Certificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) >= certRecheck {
		c.checked = now
		if stamp, err := c.stamps(); err == nil && stamp != c.stamp {
			c.load() // on failure the old certificate stays
		}
	}
	return c.cert, nil
}

// TLSConfig is the server's TLS configuration for c: TLS 1.2 at least
// (1.3 preferred by Go), HTTP/2 and HTTP/1.1.
func (c *Certificate) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: c.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
}

// UseTLS makes the server speak only HTTPS with cfg; call it before Serve.
// Failed handshakes (scanners, clients speaking plain HTTP) are logged at
// debug level.
func (s *Server) UseTLS(cfg *tls.Config) {
	s.srv.TLSConfig = cfg
	s.tls = true
	s.srv.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)
}
