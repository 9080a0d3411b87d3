package main

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/clustertest"
	"github.com/fheserve/fheserve/internal/unitvec"
	"github.com/fheserve/fheserve/npy"
)

// TestGalleryCLI runs the gallery verbs through a real server: an owner
// creates a gallery for ulrich and enrols templates from an .npy and a
// labels file; ulrich, with keys made before the enrolment, verifies and
// identifies a probe, and the decisions are the float64 oracle's (scores
// 1.2 margins away from the threshold); the owner removes a label and
// identify follows. Bad input fails with one line naming the cause and
// the fix.
func TestGalleryCLI(t *testing.T) { clustertest.InModes(t, testGalleryCLI) }

func testGalleryCLI(t *testing.T, mode string) {
	owner, user := ownerAndUser(t, mode)

	const dim = 8
	mustFail(t, owner.run("", "gallery", "create", "--name", "faces", "--dim", "8", "--threshold", "1.5"), 2, "threshold 1.5", "strictly between -1 and 1")
	mustFail(t, owner.run("", "gallery", "create", "--name", "faces", "--threshold", "0.5"), 2, "--dim is required")
	id := lastLine(owner.ok("", "gallery", "create", "--name", "faces", "--dim", "8", "--threshold", "0", "--capacity", "8", "--margin", "0.5", "--allow", "ulrich"))
	g := decodeJSON[fheserve.Gallery](t, user.ok("", "gallery", "list", id, "--json"))
	user.ok("", "keys", "create", "--model", id)

	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(9, 9))
	probe := unitvec.Random(rng, dim)
	labels := []string{"ada", "bo", "cy", "di", "ed"}
	cos := []float64{0.95, -0.9, 1.2 * g.Margin, -1.2 * g.Margin, 0.99}
	var rows []float64
	for _, s := range cos {
		rows = append(rows, unitvec.AtCosine(rng, probe, s)...)
	}
	write := func(name string, a *npy.Array) string {
		p := filepath.Join(dir, name)
		if err := npy.WriteFile(p, a); err != nil {
			t.Fatal(err)
		}
		return p
	}
	text := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	emb := write("e.npy", &npy.Array{Shape: []int{5, dim}, Data: rows})
	lab := text("l.txt", strings.Join(labels, "\n")+"\n")
	e := write("probe.npy", &npy.Array{Shape: []int{dim}, Data: probe})

	mustFail(t, owner.run("", "gallery", "enroll", id, "--embeddings", write("d7.npy", &npy.Array{Shape: []int{5, 7}, Data: rows[:35]}), "--labels", lab), 2, "has 7 values", "dimension 8")
	mustFail(t, owner.run("", "gallery", "enroll", id, "--embeddings", emb, "--labels", text("l4.txt", "a\nb\nc\nd\n")), 2, "5 embeddings", "4 labels", "one label per line")
	mustFail(t, owner.run("", "gallery", "enroll", id, "--embeddings", emb, "--labels", text("dup.txt", "a\nb\na\nd\ne\n")), 2, `"a" is given twice`, "unique")
	mustFail(t, owner.run("", "gallery", "enroll", id, "--embeddings", emb, "--labels", text("empty.txt", "a\n\nc\nd\ne\n")), 2, "empty", "give every template a label")
	mustFail(t, user.run("", "gallery", "enroll", id, "--embeddings", emb, "--labels", lab), 1, "only")
	owner.ok("", "gallery", "enroll", id, "--embeddings", emb, "--labels", lab)
	if got := strings.Split(strings.TrimSpace(user.ok("", "gallery", "list", id)), "\n")[1:]; !slices.Equal(got, labels) {
		t.Fatalf("gallery list: %v, want %v", got, labels)
	}

	mustFail(t, user.run("", "verify", "--model", id, "--embedding", e), 2, "--claim is required")
	mustFail(t, user.run("", "verify", "--model", id, "--claim", "ada", "--embedding", e, "--image", "x.jpg"), 2, "one of them")
	mustFail(t, user.run("", "verify", "--model", id, "--claim", "ada", "--embedding", write("long.npy", &npy.Array{Shape: []int{dim}, Data: slices.Repeat([]float64{0.5}, dim)})), 2, "norm", "normalize it to unit length")
	mustFail(t, user.run("", "identify", "--model", id, "--embedding", write("d9.npy", &npy.Array{Shape: []int{9}, Data: unitvec.Random(rng, 9)})), 2, "9 values", "dimension 8")
	mustFail(t, user.run("", "verify", "--model", id, "--claim", "zed", "--embedding", e), 2, `no template labelled "zed"`, "gallery list")

	for _, tc := range []struct{ claim, want string }{{"ada", "match"}, {"di", "no match"}} {
		if got := strings.TrimSpace(user.ok("", "verify", "--model", id, "--claim", tc.claim, "--embedding", e)); got != tc.want {
			t.Errorf("verify %s: %q, want %q", tc.claim, got, tc.want)
		}
	}
	if got := strings.Fields(user.ok("", "identify", "--model", id, "--embedding", e)); !slices.Equal(got, []string{"ada", "cy", "ed"}) {
		t.Errorf("identify: %v, want [ada cy ed]", got)
	}
	owner.ok("", "gallery", "remove", id, "ada", "di")
	mustFail(t, owner.run("", "gallery", "remove", id, "ada"), 2, `no template labelled "ada"`)
	if got := strings.Fields(user.ok("", "identify", "--model", id, "--embedding", e)); !slices.Equal(got, []string{"cy", "ed"}) {
		t.Errorf("identify after removing ada and di: %v, want [cy ed]", got)
	}
}

// ownerAndUser serves a fresh data directory in mode and returns the
// parties of an owner "olivia" and a user "ulrich", approved and logged
// in.
func ownerAndUser(t *testing.T, mode string) (owner, user *party) {
	t.Helper()
	admin, url := serveWithAdmin(t, t.TempDir(), mode)
	owner, user = newParty(t, url), newParty(t, url)
	owner.ok("owner-password\n", "register", "--username", "olivia", "--role", "owner", "--password-stdin")
	user.ok("user-password\n", "register", "--username", "ulrich", "--role", "user", "--password-stdin")
	admin.ok("root-password\n", "login", "--username", "root", "--password-stdin")
	admin.ok("", "admin", "approve", "olivia")
	admin.ok("", "admin", "approve", "ulrich")
	owner.ok("owner-password\n", "login", "--username", "olivia", "--password-stdin")
	user.ok("user-password\n", "login", "--username", "ulrich", "--password-stdin")
	return owner, user
}

// TestGalleryHelp compares the help of the gallery verbs with golden
// files (-update rewrites them).
func TestGalleryHelp(t *testing.T) {
	for _, args := range [][]string{{"gallery"}, {"gallery", "create"}, {"gallery", "enroll"}, {"gallery", "remove"}, {"gallery", "list"}, {"verify"}, {"identify"}} {
		t.Run(strings.Join(args, "-"), func(t *testing.T) {
			r := runCLI(t, append(args, "--help")...)
			mustSucceed(t, r)
			path := filepath.Join("testdata", "golden", "help", strings.Join(args, "-")+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(r.stdout), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (go test -run TestGalleryHelp -update writes it)", err)
			}
			if r.stdout != string(want) {
				t.Errorf("help of %s differs from %s:\n%s", strings.Join(args, " "), path, r.stdout)
			}
		})
	}
}

// TestGalleryImageCLI verifies and identifies a demo photo given with
// --image: the embedding is computed here (the face package) and
// encrypted; a gallery of its own face as enrolled from the package's
// demo embeddings and of a template at cosine -0.5 with it (threshold
// 0.3, margin at most 0.5) decides as the float64 oracle does on the
// embedding the photo gives.
func TestGalleryImageCLI(t *testing.T) {
	photo := filepath.Join("..", "..", "face", "testdata", "sample2.jpg")
	probe, err := imageEmbedding(photo)
	if err != nil {
		t.Fatal(err)
	}
	demo, err := npy.ReadFile(filepath.Join("..", "..", "face", "testdata", "demo.npy"))
	if err != nil {
		t.Fatal(err)
	}
	const self = 3 // sample2-1, the photo's one face
	own := demo.Data[self*128 : (self+1)*128]
	var cos float64
	for i, v := range own {
		cos += v * probe.Data[i]
	}
	if cos < 0.99 {
		t.Fatalf("the photo's embedding has cosine %.4f with its enrolled one", cos)
	}
	owner, user := ownerAndUser(t, clustertest.Embedded)
	id := lastLine(owner.ok("", "gallery", "create", "--name", "demo", "--dim", "128", "--threshold", "0.3", "--capacity", "2", "--margin", "0.5", "--allow", "ulrich"))
	dir := t.TempDir()
	emb := filepath.Join(dir, "e.npy")
	other := unitvec.AtCosine(rand.New(rand.NewPCG(4, 4)), probe.Data, -0.5)
	if err := npy.WriteFile(emb, &npy.Array{Shape: []int{2, 128}, Data: append(slices.Clone(own), other...)}); err != nil {
		t.Fatal(err)
	}
	labels := filepath.Join(dir, "l.txt")
	if err := os.WriteFile(labels, []byte("sample2-1\nnobody\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	owner.ok("", "gallery", "enroll", id, "--embeddings", emb, "--labels", labels)
	user.ok("", "keys", "create", "--model", id)
	if got := strings.TrimSpace(user.ok("", "verify", "--model", id, "--claim", "sample2-1", "--image", photo)); got != "match" {
		t.Errorf("verify sample2-1 with its photo: %q, want match", got)
	}
	if got := strings.Fields(user.ok("", "identify", "--model", id, "--image", photo)); !slices.Equal(got, []string{"sample2-1"}) {
		t.Errorf("identify with sample2-1's photo: %v, want [sample2-1]", got)
	}
	mustFail(t, user.run("", "identify", "--model", id, "--image", filepath.Join("..", "..", "face", "testdata", "sample1.jpg")), 2, "faces found", "crop the photo")
}
