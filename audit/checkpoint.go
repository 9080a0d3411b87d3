package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fheserve/fheserve"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a log's state: its origin, its size and the root hash of
// its Merkle tree. Its text form is the C2SP tlog-checkpoint body:
//
//	<origin>
//	<size in decimal>
//	<root hash in standard base64>
//
// A signed checkpoint is that text as a note (golang.org/x/mod/sumdb/note)
// with an Ed25519 signature by the key named like the origin.
type Checkpoint struct {
	Origin string
	tlog.Tree
}

// Text returns the checkpoint body, the text that is signed.
func (c *Checkpoint) Text() string {
	return fmt.Sprintf("%s\n%d\n%s\n", c.Origin, c.N, c.Hash)
}

// ParseCheckpoint parses a checkpoint body. Extension lines after the
// root hash, which C2SP allows, are ignored.
func ParseCheckpoint(text string) (*Checkpoint, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 || lines[0] == "" {
		return nil, fheserve.Errorf(fheserve.EINVALID, "malformed checkpoint: want origin, size and root hash lines")
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || lines[1] != strconv.FormatInt(n, 10) {
		return nil, fheserve.Errorf(fheserve.EINVALID, "malformed checkpoint: bad tree size %q", clip(lines[1]))
	}
	h, err := tlog.ParseHash(lines[2])
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "malformed checkpoint: bad root hash")
	}
	if rest := lines[3]; rest != "" && !strings.HasSuffix(rest, "\n") {
		return nil, fheserve.Errorf(fheserve.EINVALID, "malformed checkpoint: last line does not end in a newline")
	}
	return &Checkpoint{Origin: lines[0], Tree: tlog.Tree{N: n, Hash: h}}, nil
}

// OpenCheckpoint checks that msg is a checkpoint signed by the verifier
// key vkey (in note.NewVerifier's "name+hash+keydata" form) for the
// origin the key names, and returns it.
func OpenCheckpoint(msg []byte, vkey string) (*Checkpoint, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "bad verifier key %q: %v", clip(vkey), err)
	}
	return openCheckpoint(msg, v)
}

func openCheckpoint(msg []byte, v note.Verifier) (*Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case errors.As(err, &unverified):
			return nil, fheserve.Errorf(fheserve.EINVALID, "checkpoint is not signed by the key %s+%08x", v.Name(), v.KeyHash())
		case errors.As(err, &invalid):
			return nil, fheserve.Errorf(fheserve.EINVALID, "checkpoint has an invalid signature by the key %s+%08x", v.Name(), v.KeyHash())
		}
		return nil, fheserve.Errorf(fheserve.EINVALID, "malformed signed checkpoint: %v", err)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return nil, err
	}
	if c.Origin != v.Name() {
		return nil, fheserve.Errorf(fheserve.EINVALID, "checkpoint origin %q is not the key's name %q", clip(c.Origin), v.Name())
	}
	return c, nil
}

// Key is a log's signing key. The key's name is the log's origin.
type Key struct {
	skey     string
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

// Origin returns the name of the key, which is the origin of the log.
func (k *Key) Origin() string { return k.signer.Name() }

// VerifierKey returns the public key in note.NewVerifier's form, for
// clients to pin.
func (k *Key) VerifierKey() string { return k.vkey }

// sign returns c signed.
func (k *Key) sign(c *Checkpoint) ([]byte, error) {
	return note.Sign(&note.Note{Text: c.Text()}, k.signer)
}

// GenerateKey returns a new key for the log named origin; "" picks a
// random name "fheserve.audit/<16 hex digits>" so that two logs never share one.
func GenerateKey(origin string) (*Key, error) {
	if origin == "" {
		var b [8]byte
		rand.Read(b[:])
		origin = "fheserve.audit/" + hex.EncodeToString(b[:])
	}
	skey, _, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "cannot create an audit key named %q: %v", clip(origin), err)
	}
	return ParseKey(skey)
}

// ParseKey parses a signer key in note's "PRIVATE+KEY+name+hash+keydata" form.
func ParseKey(skey string) (*Key, error) {
	signer, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "malformed audit signing key")
	}
	// "PRIVATE+KEY+name+hash+keydata"; the key data is the algorithm
	// byte and the Ed25519 seed.
	parts := strings.SplitN(strings.TrimSpace(skey), "+", 5)
	seed, err := base64.StdEncoding.DecodeString(parts[len(parts)-1])
	if len(parts) != 5 || err != nil || len(seed) != 1+ed25519.SeedSize {
		return nil, fheserve.Errorf(fheserve.EINVALID, "malformed audit signing key")
	}
	pub := ed25519.NewKeyFromSeed(seed[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(signer.Name(), pub)
	if err != nil {
		return nil, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	return &Key{skey: strings.TrimSpace(skey), signer: signer, verifier: verifier, vkey: vkey}, nil
}

// LoadOrCreateKey reads the signing key in the file at path or, when there
// is none, creates one named origin (see GenerateKey) in a new file of mode
// 0600, with the verifier key beside it in path+".pub" for publishing.
func LoadOrCreateKey(path, origin string) (*Key, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		k, err := ParseKey(string(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("cannot read the audit signing key: %w", err)
	}
	k, err := GenerateKey(origin)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// O_EXCL: of two processes starting at once, one creates the key and
	// the other fails rather than overwriting it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot create the audit signing key: %w", err)
	}
	_, err = f.WriteString(k.skey + "\n")
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("cannot write the audit signing key: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("cannot write the audit signing key: %w", err)
	}
	if err := os.WriteFile(path+".pub", []byte(k.vkey+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("cannot write the audit verifier key: %w", err)
	}
	return k, nil
}
