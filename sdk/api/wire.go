package api

import (
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

// Response wrappers of list endpoints.
type (
	AccountList struct {
		Accounts []*fheserve.Account `json:"accounts"`
	}
	TokenList struct {
		Tokens []*fheserve.Token `json:"tokens"`
	}
	ModelList struct {
		Models []*fheserve.Model `json:"models"`
	}
	KeySetList struct {
		KeySets []*fheserve.KeySet `json:"keysets"`
	}
	JobList struct {
		Jobs []*fheserve.Job `json:"jobs"`
	}
)
