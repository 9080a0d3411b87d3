package web_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/bundled"
	fhttp "github.com/fheserve/fheserve/http"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/sdk"
)

var long = flag.Bool("long", false, "also time key generation and encryption of the bundled CNN in the browser against the native client (TestBrowserTimes)")

// TestBrowserTimes times key generation and one encryption for the
// bundled CNN in chromium's Web Worker and natively through the SDK, the
// same code on the same plan, for BENCHMARKS.md. It checks only that both
// ran: the figures are for reading.
func TestBrowserTimes(t *testing.T) {
	if !*long {
		t.Skip("a minute of key generation: run with -long")
	}
	const runs = 3
	ctx := context.Background()
	clientDir := buildClient(t)
	n, base, _ := startNode(t, func(s *fhttp.Server) { s.SetPortalClient(os.DirFS(clientDir)) })
	admin := sdk.New(n.URL())
	_, err := admin.Login(ctx, "root", "root-password")
	check(t, err)
	for _, a := range [][2]string{{"olivia", fheserve.RoleOwner}, {"ulrich", fheserve.RoleUser}} {
		_, err := sdk.New(n.URL()).Register(ctx, a[0], a[0]+"-password", a[1])
		check(t, err)
		_, err = admin.Approve(ctx, a[0])
		check(t, err)
	}
	owner := sdk.New(n.URL())
	_, err = owner.Login(ctx, "olivia", "olivia-password")
	check(t, err)
	onnx, err := bundled.Model("cnn")
	check(t, err)
	calib, err := bundled.Calibration("cnn")
	check(t, err)
	var calibBytes bytes.Buffer
	check(t, npy.Write(&calibBytes, calib))
	m, err := owner.Deploy(ctx, &fheserve.DeployRequest{Name: "cnn", ONNX: onnx, Calibration: calibBytes.Bytes()})
	check(t, err)
	xs, err := bundled.Inputs("cnn")
	check(t, err)
	x := xs.Data[:784]

	// Native: the SDK, as 'fheserve keys create' and 'predict' run it.
	user := sdk.New(n.URL())
	_, err = user.Login(ctx, "ulrich", "ulrich-password")
	check(t, err)
	p, err := user.Plan(ctx, m.ID)
	check(t, err)
	var nativeKeygen, nativeEncrypt []time.Duration
	for range runs {
		t0 := time.Now()
		keys, err := sdk.NewKeys(m.ID, p)
		check(t, err)
		nativeKeygen = append(nativeKeygen, time.Since(t0))
		t0 = time.Now()
		_, err = keys.Encrypt(x, 1)
		check(t, err)
		nativeEncrypt = append(nativeEncrypt, time.Since(t0))
	}

	// The browser: the portal's worker, through the page's module.
	b := newBrowser(t)
	b.do("log in", chromedp.Navigate(base+"/"),
		fill(`form`, `#login-username`, "ulrich", `#login-password`, "ulrich-password"), chromedp.WaitVisible(`#models`))
	var browserKeygen, browserEncrypt []time.Duration
	args := `{origin: location.origin, csrf: s.csrf_token, model: '` + m.ID + `', username: 'ulrich'}`
	for range runs {
		r := get(b, "keys and a prediction in the browser", chromedp.Evaluate[map[string]float64](`(async () => {
			const { work } = await import('/assets/try.js');
			const s = await (await fetch('/portal/session')).json();
			const k = await work('keygen', `+args+`);
			const p = await work('predict', {...`+args+`, key_set_id: k.key_set_id, input: Float64Array.from(`+floats(x)+`), samples: 1});
			return {keygen: k.keygen_ms, encrypt: p.encrypt_ms};
		})()`, chromedp.EvalAwaitPromise))
		browserKeygen = append(browserKeygen, time.Duration(r["keygen"]*float64(time.Millisecond)))
		browserEncrypt = append(browserEncrypt, time.Duration(r["encrypt"]*float64(time.Millisecond)))
	}
	med := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2].Round(time.Millisecond)
	}
	t.Logf("cnn (N=2^%d, %d rotation keys), medians of %d: keygen native %v (%v), browser %v (%v); encrypt native %v (%v), browser %v (%v)",
		p.Params.LogN, len(p.Rotations), runs, med(nativeKeygen), nativeKeygen, med(browserKeygen), browserKeygen,
		med(nativeEncrypt), nativeEncrypt, med(browserEncrypt), browserEncrypt)
}

func floats(x []float64) string {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, f := range x {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
	}
	b.WriteByte(']')
	return b.String()
}
