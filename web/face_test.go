package web_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/face"
	fhttp "github.com/fheserve/fheserve/http"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/sdk"
)

// TestPortalFace: the owner's gallery holds the demo photos' faces; in
// the browser the user makes keys for it, chooses a demo photo, and
// verifies its face against its own label (a match) and another's (none),
// then identifies it, as the SDK does with the face the command line
// computes from the same photo. A gallery needs N = 2^15 and about
// 100 MB of keys: -long only.
func TestPortalFace(t *testing.T) {
	if !*long {
		t.Skip("keys of about 100 MB made in the browser: run with -long")
	}
	ctx := context.Background()
	clientDir := buildClient(t)
	n, base, rec := startNode(t, func(s *fhttp.Server) { s.SetPortalClient(os.DirFS(clientDir)) })
	admin := sdk.New(n.URL())
	_, err := admin.Login(ctx, "root", "root-password")
	check(t, err)
	account := func(name, role string) *sdk.Client {
		c := sdk.New(n.URL())
		_, err := c.Register(ctx, name, name+"-password", role)
		check(t, err)
		_, err = admin.Approve(ctx, name)
		check(t, err)
		_, err = c.Login(ctx, name, name+"-password")
		check(t, err)
		return c
	}
	owner, user := account("olivia", fheserve.RoleOwner), account("ulrich", fheserve.RoleUser)
	templates, err := npy.ReadFile("../face/testdata/demo.npy")
	check(t, err)
	labelText, err := os.ReadFile("../face/testdata/demo.labels.txt")
	check(t, err)
	labels := strings.Fields(string(labelText))
	emb := make([][]float64, len(labels))
	for i := range emb {
		emb[i] = templates.Data[i*face.Dim : (i+1)*face.Dim]
	}
	g, err := owner.CreateGallery(ctx, &fheserve.GalleryRequest{Name: "demo", Dim: face.Dim, Threshold: 0.97, Capacity: 32})
	check(t, err)
	_, err = owner.Enroll(ctx, g.ModelID, labels, emb)
	check(t, err)

	// The oracle: the SDK on the command line's embedding of the photo.
	photo := "../face/testdata/sample2.jpg"
	probe, err := face.Embed(photo)
	check(t, err)
	probe64 := make([]float64, len(probe))
	var norm float64
	for _, v := range probe {
		norm += float64(v) * float64(v)
	}
	for i, v := range probe {
		probe64[i] = float64(v) / math.Sqrt(norm)
	}
	keys, err := user.GenerateKeys(ctx, g.ModelID)
	check(t, err)
	_, err = user.UploadKeys(ctx, keys, "")
	check(t, err)
	want, err := user.Identify(ctx, keys, probe64)
	check(t, err)
	if len(want) != 1 || want[0] != "sample2-1" {
		t.Fatalf("the SDK identifies sample2.jpg as %q, want sample2-1", want)
	}

	b := newBrowser(t)
	userFrom := len(rec.exchanges())
	b.do("log in", chromedp.Navigate(base+"/"),
		fill(`form`, `#login-username`, "ulrich", `#login-password`, "ulrich-password"),
		chromedp.Click(`#models a.try[data-model=demo]`), chromedp.WaitVisible(`#keygen`))
	b.do("generate keys", chromedp.Click(`#keygen`), chromedp.WaitVisible(`#keyset`))
	abs, err := filepath.Abs(photo)
	check(t, err)
	b.do("choose the photo", chromedp.SetUploadFiles(`#face-photo`, []string{abs}), chromedp.WaitVisible(`#face-status[data-faces="1"]`),
		chromedp.WaitEnabled(`#face-verify`))
	b.do("verify its own label", chromedp.SetValue(`#face-claim`, "sample2-1"), chromedp.Click(`#face-verify`),
		chromedp.WaitVisible(`#face-result[data-match=true]`))
	b.shot("face-match")
	b.do("verify another's label", chromedp.SetValue(`#face-claim`, "sample1-1"), chromedp.Click(`#face-verify`),
		chromedp.WaitVisible(`#face-result[data-match=false]`))
	b.do("identify", chromedp.Click(`#face-identify`), chromedp.WaitVisible(`#face-result[data-matches]`))
	b.shot("face-identify")
	if got := get(b, "the identification", chromedp.Evaluate[string](`document.querySelector('#face-result').dataset.matches`)); got != strings.Join(want, ",") {
		t.Errorf("the browser identifies %q, the SDK %q", got, want)
	}
	secrets := get(b, "the secret keys", chromedp.Evaluate[int](`new Promise((resolve) => {
		indexedDB.open('fheserve').onsuccess = (ev) => {
			ev.target.result.transaction('keys').objectStore('keys').count().onsuccess = (c) => resolve(c.target.result);
		};
	})`, chromedp.EvalAwaitPromise))
	if secrets != 1 {
		t.Errorf("IndexedDB holds %d secret keys, want 1", secrets)
	}
	// Neither the photo nor the embedding the browser computed left it.
	photoBytes, err := os.ReadFile(photo)
	check(t, err)
	if found, _ := leaks(rec.exchanges()[userFrom:], "the photo", photoBytes, probe64, nil); len(found) > 0 {
		t.Errorf("the browser sent the photo or its embedding: %q", found)
	}
	if errs := b.pageErrors(); len(errs) > 0 {
		t.Errorf("the browser reported errors: %q", errs)
	}
}
