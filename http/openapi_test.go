package http_test

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	fhttp "github.com/fheserve/fheserve/http"
)

// TestOpenAPI checks that the served OpenAPI document is valid JSON of
// OpenAPI 3, describes exactly the server's routes, and that every
// reference resolves.
func TestOpenAPI(t *testing.T) {
	url, _, a := MustServer(t)
	resp, err := http.Get(url + "/v1/openapi.json")
	check(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	check(t, err)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || string(body) != string(fhttp.OpenAPI()) {
		t.Fatalf("GET /v1/openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	check(t, json.Unmarshal(body, &doc))
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q, want 3.x", doc.OpenAPI)
	}
	var documented []string
	ids := map[string]bool{}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
			var op struct {
				OperationID string                     `json:"operationId"`
				Responses   map[string]json.RawMessage `json:"responses"`
			}
			check(t, json.Unmarshal(raw, &op))
			if op.OperationID == "" || ids[op.OperationID] || len(op.Responses) == 0 {
				t.Errorf("%s %s: operationId %q (must be unique), %d responses", method, path, op.OperationID, len(op.Responses))
			}
			ids[op.OperationID] = true
		}
	}
	routes := fhttp.NewServer(a, nil).Routes()
	sort.Strings(documented)
	sort.Strings(routes)
	if !slices.Equal(documented, routes) {
		t.Errorf("documented:\n%v\nserved:\n%v", documented, routes)
	}

	var all any
	check(t, json.Unmarshal(body, &all))
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if !resolves(all, ref) {
					t.Errorf("unresolved $ref %q", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(all)
}

func resolves(doc any, ref string) bool {
	cur := doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}
