package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync/atomic"
	"testing"

	"github.com/fheserve/fheserve"
	fhttp "github.com/fheserve/fheserve/http"
	"github.com/fheserve/fheserve/sdk/api"
)

// call is one request of the permission matrix.
type call struct {
	method, path string
	body         []byte
	contentType  string
}

func jsonCall(method, path string, v any) call {
	b, _ := json.Marshal(v)
	return call{method, path, b, "application/json"}
}

var fresh atomic.Int64

// freshName returns a new username.
func freshName(prefix string) string { return fmt.Sprintf("%s%d", prefix, fresh.Add(1)) }

// endpoint is a row of the permission matrix: a route, the roles that
// may use it, and how to make a valid request as a role. Requests that
// change or consume an object make a fresh one first.
type endpoint struct {
	route   string
	allowed []string
	request func(w *world, role string) call
}

var everyone = []string{anonymous, pending, user, user2, owner, owner2, admin}
var active = []string{user, user2, owner, owner2, admin}

func endpoints() []endpoint {
	ctx := context.Background()
	return []endpoint{
		{"GET /v1/openapi.json", everyone, func(w *world, _ string) call { return call{"GET", "/v1/openapi.json", nil, ""} }},
		{"GET /v1/health", everyone, func(w *world, _ string) call { return call{"GET", "/v1/health", nil, ""} }},
		{"POST /v1/accounts", everyone, func(w *world, _ string) call {
			return jsonCall("POST", "/v1/accounts", fheserve.RegisterRequest{Username: freshName("new"), Password: "a-password", Role: "user"})
		}},
		{"GET /v1/accounts", []string{admin}, func(w *world, _ string) call { return call{"GET", "/v1/accounts?status=pending", nil, ""} }},
		{"POST /v1/accounts/{username}/{action}", []string{admin}, func(w *world, role string) call {
			name := freshName("applicant")
			_, err := w.admin.API.Register(ctx, &fheserve.RegisterRequest{Username: name, Password: "a-password", Role: "user"})
			check(w.t, err)
			action := []string{"approve", "reject"}[fresh.Load()%2]
			return call{"POST", "/v1/accounts/" + name + "/" + action, nil, ""}
		}},
		{"POST /v1/sessions", active, func(w *world, role string) call {
			c, ok := w.creds[role]
			if !ok {
				c = [2]string{"nobody", "no-password"}
			}
			return jsonCall("POST", "/v1/sessions", fheserve.LoginRequest{Username: c[0], Password: c[1]})
		}},
		{"DELETE /v1/sessions/current", active, func(w *world, role string) call {
			// Log out a fresh session, not the one the matrix uses.
			w.freshSession(role)
			return call{"DELETE", "/v1/sessions/current", nil, ""}
		}},
		{"GET /v1/me", active, func(w *world, _ string) call { return call{"GET", "/v1/me", nil, ""} }},
		{"POST /v1/tokens", active, func(w *world, _ string) call {
			return jsonCall("POST", "/v1/tokens", fheserve.APITokenRequest{Name: "ci"})
		}},
		{"GET /v1/tokens", active, func(w *world, _ string) call { return call{"GET", "/v1/tokens", nil, ""} }},
		{"DELETE /v1/tokens/{id}", []string{user}, func(w *world, _ string) call {
			s, err := w.user.API.CreateAPIToken(ctx, &fheserve.APITokenRequest{Name: "victim"})
			check(w.t, err)
			return call{"DELETE", "/v1/tokens/" + s.TokenID, nil, ""}
		}},
		{"GET /v1/audit/checkpoint", active, func(w *world, _ string) call { return call{"GET", "/v1/audit/checkpoint", nil, ""} }},
		{"GET /v1/audit/key", active, func(w *world, _ string) call { return call{"GET", "/v1/audit/key", nil, ""} }},
		{"GET /v1/audit/records", active, func(w *world, _ string) call { return call{"GET", "/v1/audit/records?limit=5", nil, ""} }},
		// Record 0 is the administrator's creation: only it sees it.
		{"GET /v1/audit/records/{index}", []string{admin}, func(w *world, _ string) call {
			return call{"GET", "/v1/audit/records/0", nil, ""}
		}},
		{"GET /v1/audit/consistency", active, func(w *world, _ string) call {
			return call{"GET", "/v1/audit/consistency?old=1&new=2", nil, ""}
		}},
		{"POST /v1/models", []string{owner, owner2}, func(w *world, _ string) call { return w.deployCall() }},
		{"POST /v1/models/sealed", []string{owner, owner2}, func(w *world, _ string) call { return w.sealedDeployCall() }},
		{"GET /v1/models/{id}/seal", []string{owner}, func(w *world, _ string) call {
			return call{"GET", "/v1/models/" + w.sealedModel().ID + "/seal", nil, ""}
		}},
		{"PUT /v1/keysets/{id}/sealed", []string{owner}, func(w *world, _ string) call { return w.sealedUploadCall() }},
		{"GET /v1/models", active, func(w *world, _ string) call { return call{"GET", "/v1/models", nil, ""} }},
		{"GET /v1/models/{id}", []string{user, owner, admin}, func(w *world, _ string) call {
			return call{"GET", "/v1/models/" + w.model.ID, nil, ""}
		}},
		{"GET /v1/models/{id}/plan", []string{user, owner, admin}, func(w *world, _ string) call {
			return call{"GET", "/v1/models/" + w.model.ID + "/plan", nil, ""}
		}},
		{"PUT /v1/models/{id}/access", []string{owner, admin}, func(w *world, _ string) call {
			return jsonCall("PUT", "/v1/models/"+w.deployCheap().ID+"/access", fheserve.AccessRequest{Allow: []string{"ursula"}})
		}},
		{"PUT /v1/models/{id}/limits", []string{owner, admin}, func(w *world, _ string) call {
			return jsonCall("PUT", "/v1/models/"+w.deployCheap().ID+"/limits", fheserve.ModelLimits{RatePerMinute: 6, Daily: 100})
		}},
		{"POST /v1/models/{id}/retire", []string{owner, admin}, func(w *world, _ string) call {
			return call{"POST", "/v1/models/" + w.deployCheap().ID + "/retire", nil, ""}
		}},
		{"GET /v1/models/{id}/usage", []string{user, owner, admin}, func(w *world, _ string) call {
			return call{"GET", "/v1/models/" + w.model.ID + "/usage", nil, ""}
		}},
		{"POST /v1/models/{id}/keysets", []string{user}, func(w *world, _ string) call {
			return call{"POST", "/v1/models/" + w.model.ID + "/keysets", w.keyBytes, "application/octet-stream"}
		}},
		{"GET /v1/keysets", []string{user, user2, admin}, func(w *world, _ string) call { return call{"GET", "/v1/keysets", nil, ""} }},
		{"GET /v1/keysets/{id}", []string{user}, func(w *world, _ string) call {
			return call{"GET", "/v1/keysets/" + w.keys.KeySetID, nil, ""}
		}},
		{"DELETE /v1/keysets/{id}", []string{user}, func(w *world, _ string) call {
			return call{"DELETE", "/v1/keysets/" + keysOf(w.t, w.user, w.cheapModel().ID).KeySetID, nil, ""}
		}},
		{"POST /v1/models/{id}/jobs", []string{user}, func(w *world, _ string) call {
			return call{"POST", "/v1/models/" + w.model.ID + "/jobs?keyset=" + w.keys.KeySetID, w.input, "application/octet-stream"}
		}},
		{"GET /v1/jobs", []string{user, user2, admin}, func(w *world, _ string) call { return call{"GET", "/v1/jobs", nil, ""} }},
		{"GET /v1/jobs/{id}", []string{user, admin}, func(w *world, _ string) call { return call{"GET", "/v1/jobs/" + w.job.ID, nil, ""} }},
		{"GET /v1/jobs/{id}/events", []string{user, admin}, func(w *world, _ string) call {
			return call{"GET", "/v1/jobs/" + w.job.ID + "/events", nil, ""}
		}},
		{"GET /v1/jobs/{id}/result", []string{user}, func(w *world, _ string) call {
			return call{"GET", "/v1/jobs/" + w.job.ID + "/result", nil, ""}
		}},
	}
}

// TestPermissions walks every endpoint with every role and checks that
// exactly the allowed roles succeed, and that the others get 401
// (anonymous), 403 (pending, or not allowed) or 404 with a message.
func TestPermissions(t *testing.T) {
	w := newWorld(t)
	eps := append(endpoints(), galleryEndpoints()...)

	// The matrix covers every route the server has.
	var covered []string
	for _, ep := range eps {
		covered = append(covered, ep.route)
	}
	routes := fhttp.NewServer(w.app, nil).Routes()
	sort.Strings(covered)
	sort.Strings(routes)
	if !slices.Equal(covered, routes) {
		t.Fatalf("the matrix covers\n%v\nthe server has\n%v", covered, routes)
	}

	cells := 0
	for _, ep := range eps {
		for _, role := range roles {
			t.Run(ep.route+"/"+role, func(t *testing.T) {
				w.t = t
				c := ep.request(w, role)
				status, body := w.do(role, c.method, c.path, c.body, c.contentType)
				allowed := slices.Contains(ep.allowed, role)
				switch {
				case allowed && status >= 300:
					t.Fatalf("%s %s as %s: %d %s, want success", c.method, c.path, role, status, body)
				case !allowed && status < 300:
					t.Fatalf("%s %s as %s: %d, want it refused", c.method, c.path, role, status)
				case !allowed:
					var e api.ErrorResponse
					if err := json.Unmarshal(body, &e); err != nil || e.Message == "" {
						t.Fatalf("refusal without an error message: %s", body)
					}
					want := []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound}
					if role == anonymous {
						want = []int{http.StatusUnauthorized}
					} else if role == pending {
						want = []int{http.StatusForbidden}
					}
					if !slices.Contains(want, status) {
						t.Fatalf("%s %s as %s: %d %s, want one of %v", c.method, c.path, role, status, e.Message, want)
					}
				}
			})
			cells++
		}
	}
	t.Logf("permission matrix: %d endpoints x %d roles = %d cells", len(eps), len(roles), cells)
}

// cheapModel is a model of deployCheap's, deployed on first use, for
// requests that need ulrich's key set of some model, not which.
func (w *world) cheapModel() *fheserve.Model {
	if w.cheap == nil {
		w.cheap = w.deployCheap()
	}
	return w.cheap
}

// deployCall is a multipart deployment of the gemm fixture (see
// deployCheap).
func (w *world) deployCall() call {
	body, ctype := multipartDeploy(w.t, &fheserve.DeployRequest{Name: "gemm", ONNX: mustONNX(w.t, "gemm")})
	return call{"POST", "/v1/models", body, ctype}
}

// freshSession replaces role's token by a new session, so that the
// request logs that one out.
func (w *world) freshSession(role string) {
	c, ok := w.creds[role]
	if !ok || role == pending {
		return
	}
	s, err := w.admin.API.Login(context.Background(), &fheserve.LoginRequest{Username: c[0], Password: c[1]})
	check(w.t, err)
	old := w.tokens[role]
	w.tokens[role] = s.Token
	w.t.Cleanup(func() { w.tokens[role] = old })
}
