package fheserve_test

import (
	"strings"
	"testing"
	"unicode"

	"github.com/fheserve/fheserve"
)

// TestNamesRefuseControlCharacters checks that every name a request
// carries (a token's name, a username, a model's name, an allow-list) is
// refused when it holds control or formatting characters, with a message
// that names the cause and holds none of them itself.
func TestNamesRefuseControlCharacters(t *testing.T) {
	const hostile = "a\n\x1b[31mb"
	tests := []struct {
		name string
		req  interface{ Validate() error }
		code string // "" : accepted
		want string // in the message
	}{
		{"token name with escape", &fheserve.APITokenRequest{Name: hostile}, fheserve.EINVALID, `token name "a\n\x1b[31mb" holds U+000A, a control`},
		{"token name with ESC only", &fheserve.APITokenRequest{Name: "ci\x1b[2J"}, fheserve.EINVALID, "U+001B"},
		{"token name with DEL", &fheserve.APITokenRequest{Name: "ci\x7f"}, fheserve.EINVALID, "U+007F"},
		{"token name with C1 CSI", &fheserve.APITokenRequest{Name: "ci\u009b31m"}, fheserve.EINVALID, "U+009B"},
		{"token name with right-to-left override", &fheserve.APITokenRequest{Name: "ci\u202egnp.exe"}, fheserve.EINVALID, "U+202E"},
		{"token name not UTF-8", &fheserve.APITokenRequest{Name: "ci\xff"}, fheserve.EINVALID, "not valid UTF-8"},
		{"token name printable", &fheserve.APITokenRequest{Name: "CI déploiement, prod ✓"}, "", ""},
		{"username", &fheserve.RegisterRequest{Username: hostile, Password: "a-password", Role: fheserve.RoleUser}, fheserve.EINVALID, "username"},
		{"model name", &fheserve.DeployRequest{Name: hostile, ONNX: []byte{1}}, fheserve.EINVALID, "model name"},
		{"allow-list", &fheserve.AccessRequest{Allow: []string{hostile}}, fheserve.EINVALID, "username"},
		{"login name", &fheserve.LoginRequest{Username: hostile, Password: "a-password"}, fheserve.EUNAUTHORIZED, "wrong username or password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.req.Validate()
			if got := fheserve.ErrorCode(err); err != nil && got != tt.code || err == nil && tt.code != "" {
				t.Fatalf("Validate() = %v, want code %q", err, tt.code)
			}
			if err == nil {
				return
			}
			msg := fheserve.ErrorMessage(err)
			if !strings.Contains(msg, tt.want) {
				t.Errorf("message %q lacks %q", msg, tt.want)
			}
			if i := strings.IndexFunc(msg, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }); i >= 0 {
				t.Errorf("message %q holds a control character at byte %d", msg, i)
			}
		})
	}
}
