// Package fheserve holds the domain types shared by every part of the
// service. Implementations live in subpackages: he (CKKS engine), nn (model
// graph), compiler (graph to plan), and cmd/fheserve (the binary).
package fheserve

import (
	"errors"
	"fmt"
	"time"
)

// Error codes are stable: clients and the CLI branch on them, and the HTTP
// layer maps each to one status.
const (
	EINVALID      = "invalid"      // malformed or out-of-range input
	EUNSUPPORTED  = "unsupported"  // valid input the engine cannot evaluate
	EINSECURE     = "insecure"     // parameters below 128-bit security
	ETOOLARGE     = "too_large"    // input above a size limit
	ENOTFOUND     = "not_found"    // unknown object
	EUNAUTHORIZED = "unauthorized" // no or bad credentials
	EFORBIDDEN    = "forbidden"    // authenticated but not allowed
	ECONFLICT     = "conflict"     // state does not allow the action
	ERATELIMIT    = "rate_limited" // too many requests
	EINTERNAL     = "internal"     // a bug or an outside failure
	EUNAVAILABLE  = "unavailable"  // temporarily unable to serve
)

// Error is fheserve's one error type. Message is safe to show to the user
// who caused the error; it never holds secrets or ciphertext bytes.
type Error struct {
	Code    string
	Message string
	// RetryAfter, with ERATELIMIT or EUNAVAILABLE, is when to try again
	// (the HTTP Retry-After header).
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, "" for nil
// and EINTERNAL for errors of any other type.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of the first *Error in err's chain, or a
// generic message for other errors, whose text may not be safe to show.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
