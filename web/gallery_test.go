package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/unitvec"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/sdk"
)

// TestPortalGallery: an owner creates a face gallery in the portal,
// enrols three templates from a .npy file and removes one; the server's
// gallery then holds exactly the two others.
func TestPortalGallery(t *testing.T) {
	ctx := context.Background()
	n, base, _ := startNode(t)
	admin := sdk.New(n.URL())
	_, err := admin.Login(ctx, "root", "root-password")
	check(t, err)
	owner := sdk.New(n.URL())
	_, err = owner.Register(ctx, "olivia", "olivia-password", fheserve.RoleOwner)
	check(t, err)
	_, err = admin.Approve(ctx, "olivia")
	check(t, err)
	_, err = owner.Login(ctx, "olivia", "olivia-password")
	check(t, err)
	_, err = sdk.New(n.URL()).Register(ctx, "ulrich", "ulrich-password", fheserve.RoleUser)
	check(t, err)
	_, err = admin.Approve(ctx, "ulrich")
	check(t, err)

	const dim = 128
	rng := rand.New(rand.NewPCG(3, 4))
	var data []float64
	for range 3 {
		data = append(data, unitvec.Random(rng, dim)...)
	}
	var buf bytes.Buffer
	check(t, npy.WriteFloat64(&buf, &npy.Array{Shape: []int{3, dim}, Data: data}))
	npyPath := filepath.Join(t.TempDir(), "templates.npy")
	check(t, os.WriteFile(npyPath, buf.Bytes(), 0o644))

	b := newBrowser(t)
	b.do("log in", chromedp.Navigate(base+"/"),
		fill(`form`, `#login-username`, "olivia", `#login-password`, "olivia-password"), chromedp.WaitVisible(`#gallery-create`))
	b.do("create a gallery", chromedp.SendKeys(`#gallery-name`, "staff"), chromedp.SendKeys(`#gallery-capacity`, "16"),
		chromedp.Click(`#gallery-submit`), chromedp.WaitVisible(`#models a[data-model=staff]`))
	b.do("its page", chromedp.Click(`#models a[data-model=staff]`), chromedp.WaitVisible(`#gallery[data-templates="0"]`))
	b.do("enrol three", chromedp.SetUploadFiles(`#enrol-npy`, []string{npyPath}), chromedp.SendKeys(`#enrol-labels`, "alice, bob, carol"),
		chromedp.Click(`#enrol-submit`), chromedp.WaitVisible(`#gallery[data-templates="3"]`))
	b.do("remove bob", chromedp.Click(`#gallery button[data-label=bob]`), chromedp.WaitVisible(`#gallery[data-templates="2"]`))
	b.shot("owner-gallery")

	m, err := owner.ModelNamed(ctx, "staff")
	check(t, err)
	req, err := http.NewRequest("GET", n.URL()+"/v1/galleries/"+m.ID, nil)
	check(t, err)
	req.Header.Set("Authorization", "Bearer "+owner.Token())
	resp, err := http.DefaultClient.Do(req)
	check(t, err)
	defer resp.Body.Close()
	var g fheserve.Gallery
	check(t, json.NewDecoder(resp.Body).Decode(&g))
	if g.Templates != 2 || !slices.Equal(g.Labels, []string{"alice", "carol"}) || g.Dim != dim || g.Capacity != 16 {
		t.Errorf("the server's gallery after the portal's enrolment and removal: %+v", g)
	}
	// A user's "try it" on a gallery is its face page.
	b.do("log out", chromedp.Click(`#logout`), chromedp.WaitVisible(`#login-username`))
	b.do("the user's try page", fill(`form`, `#login-username`, "ulrich", `#login-password`, "ulrich-password"),
		chromedp.Click(`#models a.try[data-model=staff]`), chromedp.WaitVisible(`#face-photo`), chromedp.WaitReady(`#face-claim option[value=alice]`))
	if errs := b.pageErrors(); len(errs) > 0 {
		t.Errorf("the browser reported errors: %q", errs)
	}
}
