// Package http is fheserve's HTTP API: the server handlers under /v1/ and
// the Go client for them (the SDK builds on the client). Error codes map
// to HTTP statuses here and nowhere else; the client maps them back, so a
// fheserve.Error crosses the network unchanged.
//
// Control requests and responses are JSON. Keys, ciphertexts and results
// travel as binary bodies in the engine's wire format (package he),
// streamed: the server decodes them as they arrive, with limits derived
// from the model's plan, and never holds a body twice. Job progress is
// pushed as server-sent events. /v1/openapi.json describes every endpoint.
package http

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/fheserve/fheserve"
)

// statuses maps error codes to HTTP statuses.
var statuses = map[string]int{
	fheserve.EINVALID:      http.StatusBadRequest,
	fheserve.EUNSUPPORTED:  http.StatusUnprocessableEntity,
	fheserve.EINSECURE:     http.StatusUnprocessableEntity,
	fheserve.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	fheserve.ENOTFOUND:     http.StatusNotFound,
	fheserve.EUNAUTHORIZED: http.StatusUnauthorized,
	fheserve.EFORBIDDEN:    http.StatusForbidden,
	fheserve.ECONFLICT:     http.StatusConflict,
	fheserve.ERATELIMIT:    http.StatusTooManyRequests,
	fheserve.EINTERNAL:     http.StatusInternalServerError,
	fheserve.EUNAVAILABLE:  http.StatusServiceUnavailable,
}

// StatusOf returns the HTTP status for an error code.
func StatusOf(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// CodeOf returns the error code for an HTTP status, for responses that
// carry no error body.
func CodeOf(status int) string {
	for code, s := range statuses {
		if s == status && code != fheserve.EINSECURE {
			return code
		}
	}
	if status >= 500 {
		return fheserve.EINTERNAL
	}
	return fheserve.EINVALID
}

// ErrorResponse is the body of every error response.
type ErrorResponse struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// errorOf normalizes errors of the standard library into fheserve errors.
func errorOf(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return fheserve.Errorf(fheserve.ETOOLARGE, "request body is larger than the limit of %d bytes", tooBig.Limit)
	}
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if errors.As(err, &syntax) || errors.As(err, &typ) {
		return fheserve.Errorf(fheserve.EINVALID, "invalid JSON body: %v", err)
	}
	return err
}
