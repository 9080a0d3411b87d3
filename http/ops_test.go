package http

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
)

// sqlStateError stands for pgconn.PgError: an error with a SQLSTATE.
type sqlStateError string

func (e sqlStateError) Error() string    { return "ERROR: " + string(e) }
func (e sqlStateError) SQLState() string { return string(e) }

func TestConnectionLost(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"admin shutdown", fmt.Errorf("cannot list jobs: %w", sqlStateError("57P01")), true},
		{"cannot connect now", sqlStateError("57P03"), true},
		{"connection failure", sqlStateError("08006"), true},
		{"unique violation", fmt.Errorf("cannot create: %w", sqlStateError("23505")), false},
		{"network", fmt.Errorf("read: %w", &net.OpError{Op: "read", Net: "unix", Err: errors.New("connection reset by peer")}), true},
		{"closed", fmt.Errorf("write: %w", net.ErrClosed), true},
		{"unexpected EOF", fmt.Errorf("reading a row: %w", io.ErrUnexpectedEOF), true},
		{"plain", errors.New("decoding failed"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := connectionLost(tt.err); got != tt.want {
				t.Errorf("connectionLost(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
