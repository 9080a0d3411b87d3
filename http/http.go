// Package http is the server of fheserve's HTTP API: the handlers under
// /v1/, over the service interfaces of the root package. The wire
// contract it shares with its clients (error codes to statuses and back,
// the error body, the list envelopes) and the Go client live in package
// sdk/api, on the device's side, so that no client carries the server.
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
