package app

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fheserve/fheserve"
)

// MasterKeyEnv names the environment variable that can hold the master
// key (64 hex digits or base64 of 32 bytes) instead of the data directory.
const MasterKeyEnv = "FHESERVE_MASTER_KEY"

// MasterKeyFile is the name of the master key file in the data directory.
const MasterKeyFile = "master.key"

// LoadMasterKey returns the master key from $FHESERVE_MASTER_KEY if set,
// else from dataDir/master.key, creating that file (mode 0600) with a
// random key on first use.
func LoadMasterKey(dataDir string) ([]byte, error) {
	if v := strings.TrimSpace(os.Getenv(MasterKeyEnv)); v != "" {
		k, err := parseKey(v)
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", MasterKeyEnv, err)
		}
		return k, nil
	}
	path := filepath.Join(dataDir, MasterKeyFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k := make([]byte, 32)
		rand.Read(k)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("cannot create the master key: %w", err)
		}
		_, err = f.WriteString(hex.EncodeToString(k) + "\n")
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("cannot write the master key: %w", err)
		}
		return k, nil
	} else if err != nil {
		return nil, fmt.Errorf("cannot read the master key: %w", err)
	}
	k, err := parseKey(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

func parseKey(s string) ([]byte, error) {
	if k, err := hex.DecodeString(s); err == nil && len(k) == 32 {
		return k, nil
	}
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) == 32 {
		return k, nil
	}
	return nil, errors.New("the master key must be 32 bytes, as 64 hex digits or base64")
}

// keyring wraps per-model data keys with the master key. Weights are
// sealed with AES-256-GCM under their data key, so that rotating the master
// key means rewrapping small keys, not re-encrypting weights.
type keyring struct {
	master cipher.AEAD
}

func newKeyring(master []byte) (*keyring, error) {
	if len(master) != 32 {
		return nil, errors.New("app: the master key must be 32 bytes")
	}
	aead, err := newGCM(master)
	if err != nil {
		return nil, err
	}
	return &keyring{master: aead}, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// newDataKey returns a fresh data key and its wrapped form for storage.
// aad binds the wrapped key to its object (the model id).
func (k *keyring) newDataKey(aad string) (key, wrapped []byte) {
	key = make([]byte, 32)
	rand.Read(key)
	return key, seal(k.master, key, "datakey:"+aad)
}

func (k *keyring) unwrap(wrapped []byte, aad string) ([]byte, error) {
	return open(k.master, wrapped, "datakey:"+aad)
}

// seal encrypts plaintext as nonce || ciphertext || tag.
func seal(aead cipher.AEAD, plaintext []byte, aad string) []byte {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, plaintext, []byte(aad))
}

func open(aead cipher.AEAD, sealed []byte, aad string) ([]byte, error) {
	n := aead.NonceSize()
	if len(sealed) < n+aead.Overhead() {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "sealed data is truncated")
	}
	out, err := aead.Open(nil, sealed[:n], sealed[n:], []byte(aad))
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "cannot decrypt data at rest: wrong master key or corrupted data")
	}
	return out, nil
}
