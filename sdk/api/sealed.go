package api

import (
	"bytes"
	"context"
	"io"
	"net/http"

	"github.com/fheserve/fheserve"
)

// DeploySealed deploys a sealed model (owners only): the request carries
// the plan and the program stripped of its weights.
func (c *Client) DeploySealed(ctx context.Context, req *fheserve.SealedDeployRequest) (*fheserve.Model, error) {
	var m fheserve.Model
	return &m, c.do(ctx, jsonRequest(http.MethodPost, "/v1/models/sealed", req), &m)
}

// SealTasks lists the key sets of a sealed model that wait for sealed
// weights (its owner only).
func (c *Client) SealTasks(ctx context.Context, modelID string) (*fheserve.SealTasks, error) {
	var t fheserve.SealTasks
	return &t, c.do(ctx, get("/v1/models/"+esc(modelID)+"/seal", nil), &t)
}

// UploadSealed uploads a key set's sealed weights (he.MarshalSealed
// format) (the model's owner only).
func (c *Client) UploadSealed(ctx context.Context, keySetID string, sealed []byte) (*fheserve.KeySet, error) {
	var k fheserve.KeySet
	return &k, c.do(ctx, &request{method: http.MethodPut, path: "/v1/keysets/" + esc(keySetID) + "/sealed",
		body: io.Reader(bytes.NewReader(sealed)), length: int64(len(sealed)), contentType: "application/octet-stream"}, &k)
}
