package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/bundled"
	fhttp "github.com/fheserve/fheserve/http"
	onnxpkg "github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/sdk"
	"github.com/fheserve/fheserve/web"
)

// buildClient builds the browser's client afresh, as 'go generate ./web'
// does, into a temporary directory.
func buildClient(t *testing.T) string {
	dir := t.TempDir()
	// The go command that runs the test (runtime.GOROOT is empty in a
	// -trimpath build), and its GOROOT's wasm_exec.js.
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if runtime.GOROOT() == "" {
		var err error
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Fatalf("no go command to build the browser's client with: %v", err)
		}
	}
	goroot, err := exec.Command(goBin, "env", "GOROOT").Output()
	check(t, err)
	cmd := exec.Command(goBin, "build", "-trimpath", "-o", filepath.Join(dir, "fheserve.wasm"), "../cmd/fheserve-wasm")
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cannot build the browser's client: %v\n%s", err, out)
	}
	execJS, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(goroot)), "lib", "wasm", "wasm_exec.js"))
	check(t, err)
	check(t, os.WriteFile(filepath.Join(dir, "wasm_exec.js"), execJS, 0o644))
	for _, f := range web.WasmFiles {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func argmax(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// TestPortalPredict plays every role in the portal: the administrator
// approves an owner and a user, the owner deploys the bundled MLP after
// reading its compile report, and the user generates keys in the browser,
// uploads one Fashion-MNIST image as .npy, predicts, and sees the label
// the Go SDK (what 'fheserve predict' runs) gets for the same image. No
// request the browser sent holds the secret key, the input or the
// decrypted scores.
func TestPortalPredict(t *testing.T) {
	ctx := context.Background()
	clientDir := buildClient(t)
	n, base, rec := startNode(t, func(s *fhttp.Server) { s.SetPortalClient(os.DirFS(clientDir)) })
	files := t.TempDir()
	write := func(name string, b []byte) string {
		path := filepath.Join(files, name)
		check(t, os.WriteFile(path, b, 0o644))
		return path
	}
	onnx, err := bundled.Model("mlp")
	check(t, err)
	calib, err := bundled.Calibration("mlp")
	check(t, err)
	var calibBytes bytes.Buffer
	check(t, npy.Write(&calibBytes, calib))
	// The input: the first sample image, as a .npy file of shape [1 1 28 28].
	xs, err := bundled.Inputs("mlp")
	check(t, err)
	x := xs.Data[:784]
	var sampleBytes bytes.Buffer
	check(t, npy.Write(&sampleBytes, &npy.Array{Shape: []int{1, 1, 28, 28}, Data: x}))
	onnxPath, calibPath, npyPath := write("mlp.onnx", onnx), write("mlp.calib.npy", calibBytes.Bytes()), write("sample.npy", sampleBytes.Bytes())
	// The model's class names, which its ONNX file carries too, and a
	// file one short, which the server refuses.
	classes, err := onnxpkg.Labels(onnx)
	check(t, err)
	if len(classes) != 10 {
		t.Fatalf("the bundled mlp names %d classes, want 10", len(classes))
	}
	labelsPath := write("labels.txt", []byte(strings.Join(classes, "\n")+"\n"))
	shortPath := write("short.txt", []byte(strings.Join(classes[1:], "\n")))

	for _, a := range [][2]string{{"olivia", fheserve.RoleOwner}, {"ulrich", fheserve.RoleUser}} {
		_, err := sdk.New(n.URL()).Register(ctx, a[0], a[0]+"-password", a[1])
		check(t, err)
	}
	b := newBrowser(t)
	login := func(name, password, wait string) {
		t.Helper()
		b.do("log in as "+name, chromedp.Navigate(base+"/#/login"),
			fill(`form`, `#login-username`, name, `#login-password`, password), chromedp.WaitVisible(wait))
	}
	logout := func() {
		t.Helper()
		b.do("log out", chromedp.Click(`#logout`), chromedp.WaitVisible(`#login-username`))
	}

	// The administrator.
	login("root", "root-password", `#pending button[data-action=approve][data-user=ulrich]`)
	for _, name := range []string{"olivia", "ulrich"} {
		b.do("approve "+name, chromedp.Click(`#pending button[data-action=approve][data-user=`+name+`]`),
			chromedp.WaitVisible(`#accounts button[data-action=disable][data-user=`+name+`]`))
	}
	logout()

	// The owner.
	login("olivia", "olivia-password", `#deploy`)
	b.do("compile with nine labels", chromedp.SendKeys(`#deploy-name`, "mlp"),
		chromedp.SetUploadFiles(`#deploy-onnx`, []string{onnxPath}), chromedp.SetUploadFiles(`#deploy-calib`, []string{calibPath}),
		chromedp.SetUploadFiles(`#deploy-labels`, []string{shortPath}),
		chromedp.Click(`#compile`), chromedp.WaitVisible(`#deploy p.error`))
	if msg := get(b, "the error", chromedp.Text(`#deploy p.error`)); !strings.Contains(msg, "9 labels for a model of 10 outputs") {
		t.Errorf("nine labels for ten outputs: the form says %q", msg)
	}
	b.do("compile at 20 bits of privacy", chromedp.SetUploadFiles(`#deploy-labels`, []string{labelsPath}),
		chromedp.Click(`details.settings summary`), chromedp.SendKeys(`#deploy-privacy_bits`, "20"),
		chromedp.Click(`#compile`), chromedp.WaitVisible(`#report`))
	// The compiler meets the level asked for, not the default 30 bits.
	report := get(b, "the report", chromedp.Text(`#report`))
	if m := regexp.MustCompile(`Privacy\s+([0-9.]+) bits over`).FindStringSubmatch(report); m == nil {
		t.Errorf("the report says no privacy level: %q", report)
	} else if bits, _ := strconv.ParseFloat(m[1], 64); bits < 20 || bits >= 30 {
		t.Errorf("a compilation asked for 20 bits of privacy reports %v bits", bits)
	}
	b.do("compile with the defaults", clear(`#deploy-privacy_bits`), chromedp.Click(`#compile`), chromedp.WaitVisible(`#report`))
	b.shot("owner-compile")
	if got := get(b, "the report's labels", chromedp.Text(`#report-labels`)); got != strings.Join(classes, ", ") {
		t.Errorf("the report names the outputs %q", got)
	}
	previewed := get(b, "the report's plan", chromedp.Evaluate[string](`document.querySelector('#report').dataset.fingerprint`))
	b.do("deploy", chromedp.Click(`#confirm`), chromedp.WaitVisible(`#models a[data-model=mlp]`))
	b.shot("owner")
	owner := sdk.New(n.URL())
	_, err = owner.Login(ctx, "olivia", "olivia-password")
	check(t, err)
	m, err := owner.ModelNamed(ctx, "mlp")
	check(t, err)
	if !slices.Equal(m.Labels, classes) {
		t.Errorf("the deployed model's labels are %q, want %q", m.Labels, classes)
	}
	if m.PlanFingerprint != previewed {
		t.Errorf("the report showed plan %s, the deployment got %s", previewed, m.PlanFingerprint)
	}
	b.do("the model's page", chromedp.Click(`#models a[data-model=mlp]`), chromedp.WaitVisible(`#limits`))
	b.shot("owner-model")
	logout()

	// The oracle: the SDK's prediction on the same input.
	user := sdk.New(n.URL())
	_, err = user.Login(ctx, "ulrich", "ulrich-password")
	check(t, err)
	keys, err := user.GenerateKeys(ctx, m.ID)
	check(t, err)
	_, err = user.UploadKeys(ctx, keys, "")
	check(t, err)
	want, err := user.Predict(ctx, keys, x, 1, nil)
	check(t, err)

	// The user. The owner's calibration images may share runs of pixels
	// with the input: the requests from here on are checked.
	userFrom := len(rec.exchanges())
	login("ulrich", "ulrich-password", `#models a.try[data-model=mlp]`)
	b.shot("user-models")
	b.do("open the try page", chromedp.Click(`#models a.try[data-model=mlp]`), chromedp.WaitVisible(`#keygen`))
	if got := get(b, "the model's classes", chromedp.Text(`#model-labels`)); got != strings.Join(classes, ", ") {
		t.Errorf("the try page names the classes %q", got)
	}
	b.shot("try")
	b.do("generate keys", chromedp.Click(`#keygen`), chromedp.WaitVisible(`#keygen-progress`))
	b.shot("try-keygen")
	b.do("keys made", chromedp.WaitVisible(`#keyset`))
	// The notification that says so sits above the page, not over it.
	if overlap := get(b, "the notification's place", chromedp.Evaluate[string](`(() => {
		window.scrollTo(0, 0);
		const t = document.querySelector('#toast'), m = document.querySelector('main');
		if (t.hidden) return 'no notification shown';
		const tr = t.getBoundingClientRect(), mr = m.getBoundingClientRect();
		return tr.bottom <= mr.top + 0.5 ? '' : 'the notification ends at ' + tr.bottom + ', the page starts at ' + mr.top;
	})()`)); overlap != "" {
		t.Errorf("after key generation: %s", overlap)
	}
	// The worker counted every evaluation key of the plan, to the last.
	counted := get(b, "the key count", chromedp.Evaluate[string](`document.querySelector('#keygen-progress').dataset.keygen || ''`))
	if p, err := user.Plan(ctx, m.ID); err != nil {
		t.Fatal(err)
	} else if n := len(p.GaloisElements) + map[bool]int{true: 1}[p.Relin]; counted != fmt.Sprintf("%d/%d", n, n) {
		t.Errorf("key generation's progress ended at %q, want %d/%d", counted, n, n)
	}
	b.do("upload the input", chromedp.SetUploadFiles(`#npy`, []string{npyPath}), chromedp.WaitEnabled(`#predict`))
	b.do("predict", chromedp.Click(`#predict`), chromedp.WaitVisible(`#prediction`))
	b.shot("try-result")

	label := get(b, "the label", chromedp.Evaluate[int](`Number(document.querySelector('#prediction').dataset.label)`))
	scores := get(b, "the scores", chromedp.Evaluate[[]float64](`Array.from(document.querySelectorAll('.barrow'), e => Number(e.dataset.score))`))
	if label != argmax(want) {
		t.Errorf("the browser predicts class %d (scores %.3f), the SDK class %d (scores %.3f)", label, scores, argmax(want), want)
	}
	// The chart names the classes, and the verdict the SDK's class.
	if got := get(b, "the verdict", chromedp.Text(`#prediction`)); got != "Predicted: "+classes[argmax(want)] {
		t.Errorf("the page says %q, the SDK predicts %q", got, classes[argmax(want)])
	}
	if names := get(b, "the bars' names", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('.barrow .label'), e => e.textContent)`)); !slices.Equal(names, classes) {
		t.Errorf("the bars are named %q, want %q", names, classes)
	}
	for i := range want {
		if i >= len(scores) || math.Abs(scores[i]-want[i]) > 2*m.OutputError+1e-9 {
			t.Fatalf("browser scores %.4f, SDK scores %.4f: beyond twice the plan's error %.2g", scores, want, m.OutputError)
		}
	}

	// After a reload the worker is new: it unwraps the key kept in
	// IndexedDB to predict again, on a drawing normalized as the bundled
	// models' inputs are.
	b.do("reload the page", chromedp.Reload(), chromedp.WaitVisible(`#keyset`))
	b.do("draw", chromedp.SetValue(`#draw-mean`, "0.2860"), chromedp.SetValue(`#draw-std`, "0.3530"),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`(() => {
				const c = document.querySelector('#draw'), r = c.getBoundingClientRect();
				const ev = (type, x, y) => c.dispatchEvent(new PointerEvent(type, {pointerId: 1, bubbles: true,
					clientX: r.left + x * r.width, clientY: r.top + y * r.height}));
				ev('pointerdown', 0.3, 0.2);
				for (let i = 0; i <= 10; i++) ev('pointermove', 0.3 + 0.04 * i, 0.2 + 0.06 * i);
				ev('pointerup', 0.7, 0.8);
				return true;
			})()`)(ctx, t)
			return err
		}),
		chromedp.Click(`#use-drawing`), chromedp.WaitEnabled(`#predict`), chromedp.Click(`#predict`), chromedp.WaitVisible(`#prediction`))
	b.shot("try-draw")
	if status := get(b, "the input", chromedp.Text(`#input-status`)); !strings.Contains(status, "784 values from the drawing") {
		t.Errorf("after drawing, the input is %q", status)
	}

	// The secret key as the worker keeps it in IndexedDB: wrapped under a
	// non-extractable AES-GCM key. The page may use that key (same
	// origin) but not export it; the test unwraps the secret with it to
	// look for it in the requests.
	kept := get(b, "the secret keys", chromedp.Evaluate[[]map[string]any](`new Promise((resolve, reject) => {
		const open = indexedDB.open('fheserve');
		open.onerror = () => reject(open.error);
		open.onsuccess = () => {
			const t = open.result.transaction(['keys', 'wrap']);
			const all = t.objectStore('keys').getAll(), wrap = t.objectStore('wrap').get('aes-gcm');
			t.oncomplete = async () => {
				const key = wrap.result.key;
				const b64 = (b) => { let s = ''; for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192)); return btoa(s); };
				const exported = await crypto.subtle.exportKey('raw', key).then(() => 'exported', (e) => e.name);
				resolve(await Promise.all(all.result.map(async (k) => {
					const aad = new TextEncoder().encode(JSON.stringify(['fheserve secret key', k.key_set_id, k.username, k.model]));
					const plain = new Uint8Array(await crypto.subtle.decrypt({ name: 'AES-GCM', iv: k.iv, additionalData: aad }, key, k.wrapped));
					return {
						key_set_id: k.key_set_id, fields: Object.keys(k).sort().join(','), stored: b64(new Uint8Array(k.wrapped)), secret: b64(plain),
						key: key.constructor.name + ' ' + key.algorithm.name + ' ' + key.algorithm.length + ' extractable=' + key.extractable,
						exported,
					};
				})));
			};
		};
	})`, chromedp.EvalAwaitPromise))
	if len(kept) != 1 {
		t.Fatalf("IndexedDB holds %d secret keys, want 1", len(kept))
	}
	if f := kept[0]["fields"]; f != "created,fingerprint,iv,key_set_id,model,username,wrapped" {
		t.Errorf("the stored record has fields %v: want the secret wrapped, not kept raw", f)
	}
	if k, e := kept[0]["key"], kept[0]["exported"]; k != "CryptoKey AES-GCM 256 extractable=false" || e != "InvalidAccessError" {
		t.Errorf("the wrapping key is %v, and exporting it gives %v", k, e)
	}
	secret, err := base64.StdEncoding.DecodeString(kept[0]["secret"].(string))
	check(t, err)
	stored, err := base64.StdEncoding.DecodeString(kept[0]["stored"].(string))
	check(t, err)
	if len(secret) < 1024 {
		t.Fatalf("a secret key of %d bytes", len(secret))
	}
	if len(stored) != len(secret)+16 || bytes.Contains(stored, secret[:48]) {
		t.Errorf("the stored record (%d bytes) is not the secret key (%d bytes) encrypted", len(stored), len(secret))
	}
	// A record kept by an earlier portal (the raw key, database version
	// 1's shape) still predicts, and is wrapped when used.
	b.do("keep the key raw, as before", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`new Promise((resolve, reject) => {
			const open = indexedDB.open('fheserve');
			open.onsuccess = () => {
				const t = open.result.transaction('keys', 'readwrite'), s = t.objectStore('keys');
				const get = s.get('`+keySetOf(kept[0])+`');
				get.onsuccess = () => {
					const { iv, wrapped, ...rec } = get.result;
					rec.secret = Uint8Array.from(atob('`+kept[0]["secret"].(string)+`'), (c) => c.charCodeAt(0));
					s.put(rec);
				};
				t.oncomplete = () => { open.result.close(); resolve(true); };
				t.onerror = () => reject(t.error);
			};
		})`, chromedp.EvalAwaitPromise)(ctx, tg)
		return err
	}), chromedp.Reload(), chromedp.WaitVisible(`#keyset`),
		chromedp.SetUploadFiles(`#npy`, []string{npyPath}), chromedp.WaitEnabled(`#predict`),
		chromedp.Click(`#predict`), chromedp.WaitVisible(`#prediction`))
	if got := get(b, "the verdict", chromedp.Text(`#prediction`)); got != "Predicted: "+classes[argmax(want)] {
		t.Errorf("with the raw key of an earlier portal the page says %q, the SDK predicts %q", got, classes[argmax(want)])
	}
	if fields := get(b, "the record's fields", chromedp.Evaluate[string](`new Promise((resolve) => {
		indexedDB.open('fheserve').onsuccess = (ev) => {
			ev.target.result.transaction('keys').objectStore('keys').getAll().onsuccess = (r) => resolve(Object.keys(r.target.result[0]).sort().join(','));
		};
	})`, chromedp.EvalAwaitPromise)); fields != "created,fingerprint,iv,key_set_id,model,username,wrapped" {
		t.Errorf("after its use the raw record has fields %s: want it wrapped", fields)
	}

	// Revoking the key set revokes it on the server and deletes the secret.
	keySet := get(b, "the key set", chromedp.Text(`#keyset`))
	b.do("revoke", chromedp.Click(`#revoke`), chromedp.WaitVisible(`#keylist p.empty`))
	if ks, err := user.API.KeySet(ctx, keySet); err != nil || ks.Status != fheserve.KeySetRevoked {
		t.Errorf("key set %s after revoking it in the browser: %+v, %v", keySet, ks, err)
	}
	if left := get(b, "the secret keys left", chromedp.Evaluate[int](`new Promise((resolve) => {
		indexedDB.open('fheserve').onsuccess = (ev) => {
			ev.target.result.transaction('keys').objectStore('keys').count().onsuccess = (c) => resolve(c.target.result);
		};
	})`, chromedp.EvalAwaitPromise)); left != 0 {
		t.Errorf("%d secret keys left in IndexedDB after revoking", left)
	}

	// The owner sees the predictions in the model's usage.
	logout()
	login("olivia", "olivia-password", `#models a[data-model=mlp]`)
	b.do("the model's usage", chromedp.Click(`#models a[data-model=mlp]`), chromedp.WaitVisible(`#usage .bars`))
	b.shot("owner-usage")
	if u, err := owner.Usage(ctx, m.ID); err != nil || u.Requests != 4 {
		t.Errorf("usage: %+v, %v; want the SDK's one and the browser's three", u, err)
	}

	// The administrator verifies the audit log in the browser: refused
	// under another key, then verified under the server's, as the Go
	// client verifies it.
	logout()
	login("root", "root-password", `#audit-verify`)
	other, err := audit.GenerateKey("")
	check(t, err)
	b.do("verify under another key", chromedp.SetValue(`#audit-key`, other.VerifierKey()), chromedp.Click(`#audit-verify`),
		chromedp.WaitVisible(`#audit-result[data-ok=false]`))
	b.do("verify under the server's key", clear(`#audit-key`), chromedp.Click(`#audit-verify`),
		chromedp.WaitVisible(`#audit-result[data-ok=true]`))
	b.do("verify again", chromedp.Click(`#audit-verify`), chromedp.WaitVisible(`#audit-result[data-ok=true]`))
	b.shot("admin-audit")
	tree := get(b, "the verified tree", chromedp.Evaluate[[]int](`[Number(document.querySelector('#audit-result').dataset.tree), Number(document.querySelector('#audit-result').dataset.records)]`))
	pinned := get(b, "the pinned key", chromedp.Value(`#audit-key`))
	rootClient := sdk.New(n.URL())
	_, err = rootClient.Login(ctx, "root", "root-password")
	check(t, err)
	vkey := n.App.AuditLog().VerifierKey()
	checked, err := (&audit.Client{URL: n.URL() + audit.PathPrefix, Token: rootClient.Token()}).CheckLog(ctx, vkey, nil)
	check(t, err)
	if pinned != vkey || tree[0] > int(checked.Checkpoint.N) || tree[0] < 10 || tree[1] != tree[0] {
		t.Errorf("the browser verified %d records of a tree of %d under %q; the Go client %d of %d under %q",
			tree[1], tree[0], pinned, checked.Records, checked.Checkpoint.N, vkey)
	}

	checkNoSecrets(t, rec.exchanges()[userFrom:], secret, x, scores)
	if errs := b.pageErrors(); len(errs) > 0 {
		t.Errorf("the browser reported errors: %q", errs)
	}
}

func keySetOf(rec map[string]any) string { s, _ := rec["key_set_id"].(string); return s }

// checkNoSecrets fails t for each leak found (leaks).
func checkNoSecrets(t *testing.T, log []exchange, secret []byte, input, output []float64) {
	t.Helper()
	found, needles := leaks(log, "the secret key", secret, input, output)
	for _, f := range found {
		t.Error(f)
	}
	if !slices.ContainsFunc(log, func(x exchange) bool { return x.method == "POST" && len(x.body) > 1<<20 }) {
		t.Errorf("no key upload among the %d requests: the check saw nothing", len(log))
	}
	sent := 0
	for _, x := range log {
		sent += len(x.body)
	}
	t.Logf("%d requests, %d bytes sent by the browser, none holds any of %d secrets", len(log), sent, needles)
}

// leaks lists the request bodies that hold 48 bytes of the secret key
// (or its beginning in base64), a run of input or output values as float32 or
// float64 bytes, an output value's float64 bytes, or a value as decimal
// text. Each body is scanned once, the needles indexed by their first four
// bytes.
func leaks(log []exchange, secretName string, secret []byte, input, output []float64) (found []string, needles int) {
	type needle struct {
		what string
		b    []byte
	}
	index := map[uint32][]needle{}
	count := 0
	add := func(what string, b []byte) {
		if len(b) < 8 {
			return // too short to mean anything in megabytes of ciphertext
		}
		k := binary.LittleEndian.Uint32(b)
		index[k] = append(index[k], needle{what, b})
		count++
	}
	// Any 48 bytes of the secret key hold one of these.
	for off := 0; off+32 <= len(secret); off += 16 {
		add(secretName+" at "+strconv.Itoa(off), secret[off:off+32])
	}
	if len(secret) >= 48 {
		add(secretName+" in base64", []byte(base64.StdEncoding.EncodeToString(secret[:48])))
	}
	values := func(what string, v []float64) {
		var f32, f64 []byte
		for _, f := range v {
			f32 = binary.LittleEndian.AppendUint32(f32, math.Float32bits(float32(f)))
			f64 = binary.LittleEndian.AppendUint64(f64, math.Float64bits(f))
			if f != math.Trunc(f) {
				add(what+" as text", []byte(strconv.FormatFloat(f, 'g', -1, 64)))
				add(what+" as float32 text", []byte(strconv.FormatFloat(float64(float32(f)), 'g', -1, 32)))
			}
		}
		const run = 4 // values
		for i := 0; i+run <= len(v); i++ {
			if slices.ContainsFunc(v[i:i+run], func(f float64) bool { return f != math.Trunc(f) }) {
				add(what+"s as float32", f32[4*i:4*(i+run)])
				add(what+"s as float64", f64[8*i:8*(i+run)])
			}
		}
	}
	values("an input value", input)
	values("an output value", output)
	for _, f := range output {
		add("an output value as float64", binary.LittleEndian.AppendUint64(nil, math.Float64bits(f)))
	}
	for _, x := range log {
		for i := 0; i+4 <= len(x.body); i++ {
			for _, n := range index[binary.LittleEndian.Uint32(x.body[i:])] {
				if bytes.HasPrefix(x.body[i:], n.b) {
					found = append(found, fmt.Sprintf("%s %s sent %s (at byte %d)", x.method, x.path, n.what, i))
				}
			}
		}
	}
	return found, count
}

// TestLeaks checks the check: it finds each kind of leak in a body of
// random bytes, and nothing in the random bytes alone.
func TestLeaks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	noise := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	secret := noise(1 << 16)
	input, output := make([]float64, 784), make([]float64, 10)
	for i := range input {
		input[i] = rng.NormFloat64()
	}
	for i := range output {
		output[i] = 10 * rng.NormFloat64()
	}
	var f32 []byte
	for _, f := range input[100:104] {
		f32 = binary.LittleEndian.AppendUint32(f32, math.Float32bits(float32(f)))
	}
	tests := []struct {
		name   string
		inject []byte
		want   bool
	}{
		{"nothing", nil, false},
		{"a piece of the secret key", secret[30000:30100], true},
		{"four input values as float32", f32, true},
		{"an output as text", []byte(strconv.FormatFloat(output[3], 'g', -1, 64)), true},
		{"an output as float64", binary.LittleEndian.AppendUint64(nil, math.Float64bits(output[7])), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := slices.Concat(noise(1<<20), tt.inject, noise(1000))
			found, _ := leaks([]exchange{{method: "POST", path: "/x", body: body}}, "the secret key", secret, input, output)
			if (len(found) > 0) != tt.want {
				t.Errorf("found %q, want a leak: %v", found, tt.want)
			}
		})
	}
}
