package api

import (
	"context"
	"net/http"

	"github.com/fheserve/fheserve"
)

// CreateGallery creates an empty gallery (owners).
func (c *Client) CreateGallery(ctx context.Context, req *fheserve.GalleryRequest) (*fheserve.Gallery, error) {
	var g fheserve.Gallery
	return &g, c.do(ctx, jsonRequest(http.MethodPost, "/v1/galleries", req), &g)
}

// Gallery returns a gallery's labels and counts.
func (c *Client) Gallery(ctx context.Context, id string) (*fheserve.Gallery, error) {
	var g fheserve.Gallery
	return &g, c.do(ctx, get("/v1/galleries/"+esc(id), nil), &g)
}

// Enroll adds labelled embeddings to a gallery (its owner). req must
// hold finite values only (EnrollRequest.Validate): JSON has no NaN.
func (c *Client) Enroll(ctx context.Context, id string, req *fheserve.EnrollRequest) (*fheserve.Gallery, error) {
	var g fheserve.Gallery
	return &g, c.do(ctx, jsonRequest(http.MethodPost, "/v1/galleries/"+esc(id)+"/templates", req), &g)
}

// RemoveTemplates removes templates from a gallery by label (its owner).
func (c *Client) RemoveTemplates(ctx context.Context, id string, req *fheserve.RemoveRequest) (*fheserve.Gallery, error) {
	var g fheserve.Gallery
	return &g, c.do(ctx, jsonRequest(http.MethodPost, "/v1/galleries/"+esc(id)+"/remove", req), &g)
}
