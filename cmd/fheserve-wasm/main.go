//go:build js && wasm

// Command fheserve-wasm is the portal's client in the browser: the same
// SDK and he/client code as the command line's, built with GOOS=js
// GOARCH=wasm and run in a Web Worker (web/assets/worker.js), so that key
// generation, encryption and the audit log's verification never block
// the page. It sets a global fheserve object with functions that return
// promises:
//
//	fheserve.generateKeys({origin, csrf, model}, onProgress)
//	  -> {key_set_id, fingerprint, secret: Uint8Array, upload_bytes, keygen_ms, upload_ms}
//	fheserve.predict({origin, csrf, model, key_set_id, secret, input: Float64Array, samples}, onProgress)
//	  -> {output: Float64Array, output_size, encrypt_ms, server_ms, decrypt_ms, upload_bytes, result_bytes}
//	fheserve.verifyAudit({origin, csrf, key, seen: Uint8Array | null})
//	  -> {key, pinned_now, note: Uint8Array, tree_size, root_hash, records, seen_size}
//	fheserve.faceFind(photo: Uint8Array)
//	  -> {width, height, faces: [{x, y, w, h, score, embedding: Float64Array}]}
//	fheserve.faceQuery({origin, csrf, model, key_set_id, secret, embedding, claim}, onProgress)
//	  -> {match: bool} with a claim (verification), {matches: [label]} without (identification)
//
// It talks to the server with the browser's session cookie (never a
// bearer token, which the page does not hold) and the session's CSRF
// token. Only public and evaluation keys and ciphertexts leave: the
// secret key goes back to the worker, which keeps it in IndexedDB.
//
// Build it with 'go generate ./web', which puts it where the portal's
// handler embeds it.
package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"syscall/js"
	"time"

	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/face"
	"github.com/fheserve/fheserve/plan"
	"github.com/fheserve/fheserve/sdk"
)

func main() {
	js.Global().Set("fheserve", js.ValueOf(map[string]any{
		"generateKeys": js.FuncOf(func(_ js.Value, args []js.Value) any {
			return promise(func() (any, error) { return generateKeys(args[0], progressFunc(args)) })
		}),
		"predict": js.FuncOf(func(_ js.Value, args []js.Value) any {
			return promise(func() (any, error) { return predict(args[0], progressFunc(args)) })
		}),
		"verifyAudit": js.FuncOf(func(_ js.Value, args []js.Value) any {
			return promise(func() (any, error) { return verifyAudit(args[0]) })
		}),
		"faceFind": js.FuncOf(func(_ js.Value, args []js.Value) any {
			return promise(func() (any, error) { return faceFind(args[0]) })
		}),
		"faceQuery": js.FuncOf(func(_ js.Value, args []js.Value) any {
			return promise(func() (any, error) { return faceQuery(args[0], progressFunc(args)) })
		}),
	}))
	select {}
}

// promise runs f on its own goroutine (a JS callback must not block on
// the network) and returns a Promise of its result.
func promise(f func() (any, error)) js.Value {
	executor := js.FuncOf(func(_ js.Value, args []js.Value) any {
		resolve, reject := args[0], args[1]
		go func() {
			v, err := f()
			if err != nil {
				reject.Invoke(js.Global().Get("Error").New(err.Error()))
				return
			}
			resolve.Invoke(v)
		}()
		return nil
	})
	defer executor.Release() // the Promise constructor calls it at once
	return js.Global().Get("Promise").New(executor)
}

// progress reports a stage to the worker: what is happening, and done of
// total when it is counted.
type progress func(stage string, done, total int)

func progressFunc(args []js.Value) progress {
	if len(args) < 2 || args[1].Type() != js.TypeFunction {
		return func(string, int, int) {}
	}
	f := args[1]
	return func(stage string, done, total int) {
		f.Invoke(js.ValueOf(map[string]any{"stage": stage, "done": done, "total": total}))
	}
}

// csrfTransport adds the session's CSRF token to every request; the
// browser's fetch adds the session cookie.
type csrfTransport struct{ token string }

func (t csrfTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-CSRF-Token", t.token)
	return http.DefaultTransport.RoundTrip(r)
}

// client is an SDK client of the page's server with its session.
func client(opts js.Value) *sdk.Client {
	c := sdk.New(opts.Get("origin").String())
	c.API.HTTP = &http.Client{Transport: csrfTransport{opts.Get("csrf").String()}}
	return c
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func generateKeys(opts js.Value, report progress) (any, error) {
	ctx := context.Background()
	c := client(opts)
	model := opts.Get("model").String()
	report("plan", 0, 0)
	p, err := c.Plan(ctx, model)
	if err != nil {
		return nil, err
	}
	report("keygen", 0, 0)
	t0 := time.Now()
	keys, err := sdk.NewKeysProgress(model, p, func(done, total int) { report("keygen", done, total) })
	if err != nil {
		return nil, err
	}
	keygen := time.Since(t0)
	report("upload", 0, keys.EvalKeysSize())
	t0 = time.Now()
	ks, err := c.UploadKeys(ctx, keys, "")
	if err != nil {
		return nil, err
	}
	upload := time.Since(t0)
	secret, err := keys.MarshalSecret()
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"key_set_id": ks.ID, "fingerprint": ks.Fingerprint, "secret": bytesToJS(secret),
		"upload_bytes": keys.EvalKeysSize(), "keygen_ms": ms(keygen), "upload_ms": ms(upload),
	}, nil
}

func predict(opts js.Value, report progress) (any, error) {
	ctx := context.Background()
	c := client(opts)
	p, keys, err := loadKeys(ctx, c, opts, report)
	if err != nil {
		return nil, err
	}
	x := floatsFromJS(opts.Get("input"))
	n := opts.Get("samples").Int()
	var stats sdk.PredictStats
	report("encrypt", 0, n)
	y, err := c.PredictWith(ctx, keys, x, n, &sdk.PredictOptions{Stats: &stats, Progress: func(pr sdk.Progress) {
		switch {
		case pr.Wait > 0:
			report("wait", pr.Predicted, pr.Samples)
		case pr.Job != nil:
			report("evaluate", pr.Job.Done, pr.Job.Total)
		}
	}})
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"output": floatsToJS(y), "output_size": p.OutputSize(),
		"encrypt_ms": ms(stats.Encrypt), "server_ms": ms(stats.Server), "evaluate_ms": ms(stats.Evaluate), "decrypt_ms": ms(stats.Decrypt),
		"upload_bytes": stats.UploadBytes, "result_bytes": stats.ResultBytes,
	}, nil
}

// verifyAudit checks the signed audit log as 'fheserve audit verify'
// does: the latest checkpoint's signature under the pinned key (the
// server's own on first use, which the page says), its consistency with
// the checkpoint seen before, and the inclusion of every record the
// caller may read.
func verifyAudit(opts js.Value) (any, error) {
	ctx := context.Background()
	origin := opts.Get("origin").String()
	c := &audit.Client{URL: origin + audit.PathPrefix, HTTPClient: &http.Client{Transport: csrfTransport{opts.Get("csrf").String()}}}
	key, pinnedNow := "", false
	if k := opts.Get("key"); k.Type() == js.TypeString && k.String() != "" {
		key = k.String()
	} else {
		var err error
		if key, err = c.VerifierKey(ctx); err != nil {
			return nil, err
		}
		pinnedNow = true
	}
	var seen []byte
	if s := opts.Get("seen"); s.Type() == js.TypeObject && !s.IsNull() {
		seen = make([]byte, s.Get("length").Int())
		js.CopyBytesToGo(seen, s)
	}
	res, err := c.CheckLog(ctx, key, seen)
	if err != nil {
		return nil, err
	}
	seenSize := -1
	if seen != nil {
		if old, err := audit.OpenCheckpoint(seen, key); err == nil {
			seenSize = int(old.N)
		}
	}
	return map[string]any{
		"key": key, "pinned_now": pinnedNow, "note": bytesToJS(res.Note),
		"tree_size": int(res.Checkpoint.N), "root_hash": res.Checkpoint.Hash.String(),
		"records": res.Records, "seen_size": seenSize,
	}, nil
}

// faceFind finds the faces of a photo and computes each one's embedding
// with the same network as 'fheserve face embed', scaled to unit length
// as a cosine gallery takes it.
func faceFind(photo js.Value) (any, error) {
	b := make([]byte, photo.Get("length").Int())
	js.CopyBytesToGo(b, photo)
	img, err := face.DecodeImage(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("cannot read the photo: %v (JPEG or PNG)", err)
	}
	e, err := face.New()
	if err != nil {
		return nil, err
	}
	found := e.Find(img)
	face.SortLeftToRight(found)
	faces := make([]any, len(found))
	for i, f := range found {
		faces[i] = map[string]any{
			"x": f.Box.X, "y": f.Box.Y, "w": f.Box.Width, "h": f.Box.Height, "score": f.Score,
			"embedding": floatsToJS(face.UnitLength(f.Descriptor)),
		}
	}
	return map[string]any{"width": img.Width, "height": img.Height, "faces": faces}, nil
}

// faceQuery verifies an embedding against a claimed label of a gallery,
// or identifies it, under encryption, with the SDK's Verify and Identify.
func faceQuery(opts js.Value, report progress) (any, error) {
	ctx := context.Background()
	c := client(opts)
	_, keys, err := loadKeys(ctx, c, opts, report)
	if err != nil {
		return nil, err
	}
	probe := floatsFromJS(opts.Get("embedding"))
	report("evaluate", 0, 0)
	if claim := opts.Get("claim").String(); claim != "" {
		ok, err := c.Verify(ctx, keys, claim, probe)
		if err != nil {
			return nil, err
		}
		return map[string]any{"match": ok}, nil
	}
	matches, err := c.Identify(ctx, keys, probe)
	if err != nil {
		return nil, err
	}
	labels := make([]any, len(matches))
	for i, l := range matches {
		labels[i] = l
	}
	return map[string]any{"matches": labels}, nil
}

func floatsToJS(v []float64) js.Value {
	a := js.Global().Get("Float64Array").New(len(v))
	for i, f := range v {
		a.SetIndex(i, f)
	}
	return a
}

// loadKeys fetches the plan of opts.model and loads the key set
// opts.key_set_id with the secret key the page passed (opts.secret), which
// is cleared once loaded.
func loadKeys(ctx context.Context, c *sdk.Client, opts js.Value, report progress) (*plan.Plan, *sdk.Keys, error) {
	model := opts.Get("model").String()
	report("plan", 0, 0)
	p, err := c.Plan(ctx, model)
	if err != nil {
		return nil, nil, err
	}
	secret := make([]byte, opts.Get("secret").Get("length").Int())
	js.CopyBytesToGo(secret, opts.Get("secret"))
	keys, err := sdk.LoadKeys(model, opts.Get("key_set_id").String(), p, secret)
	clear(secret)
	return p, keys, err
}

// floatsFromJS copies a JavaScript array of numbers.
func floatsFromJS(v js.Value) []float64 {
	out := make([]float64, v.Get("length").Int())
	for i := range out {
		out[i] = v.Index(i).Float()
	}
	return out
}

func bytesToJS(b []byte) js.Value {
	a := js.Global().Get("Uint8Array").New(len(b))
	js.CopyBytesToJS(a, b)
	return a
}
