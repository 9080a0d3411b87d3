package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/plan"
)

// Golden files, as in golang/mod's modfile tests: testdata/golden/compile
// holds what `fheserve compile` prints for every bundled model and every
// example in both packings (NAME.txt: the command line, then the report)
// and the plan `--json` prints (NAME.json); testdata/golden/readme holds
// the README's samples, each a command line and its output. The README's
// blocks that follow a `<!-- golden: PATH -->` comment are copies of those
// files. `go test ./cmd/fheserve -run Golden -update -long` rewrites the
// files from the program and the README's blocks from the files.
var update = flag.Bool("update", false, "rewrite the golden files from the program's output, and the README's samples from them")

// repoRoot is the repository's root from this package's directory; the
// golden files name paths relative to it, as a user at the root types them.
const repoRoot = "../.."

const goldenDir = "testdata/golden"

// exampleFlags are the settings the examples' READMEs compile with.
var exampleFlags = map[string][]string{
	"digits-mlp": {"--degree", "15"},
	"fmnist-cnn": {"--degrees", "/3/Relu=31,/7/Relu=15", "--fit", "least-squares", "--margin", "0.25"},
}

// longExamples take seconds to compile each (half the time of all the
// others together): their golden files are checked with -long.
var longExamples = map[string]bool{"fmnist-cnn-poly": true}

// noGolden are examples too large to compile in a test run (prism-cifar:
// minutes and 8 GB at N=2^16); BENCHMARKS.md has their plans' figures.
var noGolden = map[string]bool{"prism-cifar": true}

// compileCase is one `fheserve compile` command line, with paths relative
// to the repository's root.
type compileCase struct {
	name string // golden files NAME.txt and NAME.json
	args []string
	long bool
}

// compileCases lists every bundled model and every example in both
// packings, with its calibration rows.
func compileCases(t *testing.T) []compileCase {
	t.Helper()
	var cases []compileCase
	add := func(prefix, model, calib string, flags []string, long bool) {
		for _, packing := range []string{plan.Latency, plan.Batch} {
			args := []string{"compile", "--model", model, "--calibration", calib, "--packing", packing}
			cases = append(cases, compileCase{prefix + "-" + packing, append(args, flags...), long})
		}
	}
	for _, name := range bundled.Names() {
		add("bundled-"+name, "bundled/"+name+".onnx", "bundled/"+name+".calib.npy", nil, false)
	}
	models, err := filepath.Glob(filepath.Join(repoRoot, "examples", "*", "model.onnx"))
	if err != nil || len(models) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, m := range models {
		name := filepath.Base(filepath.Dir(m))
		if noGolden[name] {
			continue
		}
		add("example-"+name, "examples/"+name+"/model.onnx", "examples/"+name+"/calib.npy", exampleFlags[name], longExamples[name])
	}
	// A ReLU network compiled with calibration data and no setting: the
	// compiler chooses the approximations (compiler/search.go).
	add("unseen-digits-stride2", "compiler/testdata/unseen/digits-stride2.onnx", "compiler/testdata/unseen/digits-stride2.calib.npy", nil, false)
	return cases
}

// TestGoldenCompile checks the compile report and the plan JSON of every
// bundled model and example against testdata/golden/compile.
func TestGoldenCompile(t *testing.T) {
	dir := filepath.Join(goldenDir, "compile")
	cases := compileCases(t)
	want := map[string]bool{}
	for _, c := range cases {
		want[c.name+".txt"], want[c.name+".json"] = true, true
	}
	checkNoStale(t, dir, want)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.long && !*long {
				t.Skip("seconds to compile: run with -long")
			}
			t.Parallel()
			args := slices.Clone(c.args)
			for i, a := range args {
				if i > 0 && (args[i-1] == "--model" || args[i-1] == "--calibration") {
					args[i] = filepath.Join(repoRoot, a)
				}
			}
			r := runCLI(t, args...)
			mustSucceed(t, r)
			checkGolden(t, filepath.Join(dir, c.name+".txt"), formatCommand(c.args)+r.stdout)
			r = runCLI(t, append(args, "--json")...)
			mustSucceed(t, r)
			checkGolden(t, filepath.Join(dir, c.name+".json"), r.stdout)
		})
	}
}

// checkNoStale fails on files in dir that no case produces (a model or
// example removed or renamed), and removes them with -update.
func checkNoStale(t *testing.T, dir string, want map[string]bool) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !(*update && os.IsNotExist(err)) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if want[e.Name()] {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if !*update {
			t.Errorf("%s: no test produces it (remove it, or run with -update)", path)
		} else if err := os.Remove(path); err != nil {
			t.Error(err)
		}
	}
}

// checkGolden compares got with the file at path, or writes it there
// with -update.
func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		writeGolden(t, path, got)
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the program's output (run with -update if the change is intended):\n%s", path, lineDiff(string(want), got))
	}
}

func writeGolden(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// lineDiff shows the first differing line of want and got, with its
// number.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  want %q\n  got  %q", i+1, wl, gl)
		}
	}
	return "(same lines)"
}

// A sample is a command line as a user types it at the repository's root
// and what it prints (standard output, then standard error).
type sample struct {
	args   []string
	output string
}

// formatCommand writes args as a shell command line, "$ fheserve ...",
// continued with a backslash before a flag that would pass column 78.
func formatCommand(args []string) string {
	var b strings.Builder
	line := "$ fheserve"
	for i := 0; i < len(args); i++ {
		unit := args[i]
		if strings.HasPrefix(unit, "--") && i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			i++
			unit += " " + args[i]
		}
		if len(line)+1+len(unit) > 78 && strings.HasPrefix(unit, "--") {
			b.WriteString(line + " \\\n")
			line = "   "
		}
		line += " " + unit
	}
	b.WriteString(line + "\n")
	return b.String()
}

// parseSamples reads the samples of a golden file: each starts with a
// line "$ fheserve ...", continued by lines ending in a backslash.
func parseSamples(text string) ([]sample, error) {
	var samples []sample
	lines := strings.SplitAfter(text, "\n")
	for i := 0; i < len(lines); {
		cmd, ok := strings.CutPrefix(lines[i], "$ fheserve ")
		if !ok {
			return nil, fmt.Errorf("line %d: want a command line \"$ fheserve ...\", have %q", i+1, lines[i])
		}
		for strings.HasSuffix(cmd, "\\\n") && i+1 < len(lines) {
			i++
			cmd = strings.TrimSuffix(cmd, "\\\n") + lines[i]
		}
		if strings.ContainsAny(cmd, `"'`) {
			return nil, fmt.Errorf("line %d: quoted arguments are not supported", i+1)
		}
		i++
		start := i
		for i < len(lines) && !strings.HasPrefix(lines[i], "$ ") {
			i++
		}
		samples = append(samples, sample{strings.Fields(cmd), strings.Join(lines[start:i], "")})
	}
	return samples, nil
}

// volatile matches the figures that differ between runs of the same
// command: durations, and errors measured on fresh encryptions. The
// samples are compared with them replaced by a placeholder, so the README
// shows a real run's figures.
var volatile = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`("(?:compile|keygen|encrypt|evaluate|decrypt)"): [0-9.e+-]+`), "$1: <ms>"},
	{regexp.MustCompile(`("(?:max_abs_error|rmse)"): [0-9.e+-]+`), "$1: <measured>"},
	{regexp.MustCompile(`\b[0-9]+(?:\.[0-9]+)? ms\b`), "<ms>"},
	{regexp.MustCompile(`(max abs error) [0-9.e+-]+`), "$1 <measured>"},
}

func normalize(s string) string {
	for _, v := range volatile {
		s = v.re.ReplaceAllString(s, v.repl)
	}
	return s
}

// TestGoldenSamples runs the commands of testdata/golden/readme in a
// directory that holds the repository's model folders, and compares what
// they print with the files, volatile figures aside.
func TestGoldenSamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "readme", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples in %s: %v", goldenDir, err)
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for i, f := range files {
		files[i] = abs(f)
	}
	work := t.TempDir()
	for _, d := range []string{"bundled", "examples", "testdata"} {
		if err := os.Symlink(abs(filepath.Join(repoRoot, d)), filepath.Join(work, d)); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(work)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			samples, err := parseSamples(string(data))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			var got strings.Builder
			for _, s := range samples {
				r := runCLI(t, s.args...)
				got.WriteString(formatCommand(s.args) + r.stdout + r.stderr)
			}
			if *update {
				writeGolden(t, f, got.String())
			} else if normalize(got.String()) != normalize(string(data)) {
				t.Errorf("%s differs from the program's output, durations and measured errors aside (run with -update if the change is intended):\n%s",
					f, lineDiff(normalize(string(data)), normalize(got.String())))
			}
		})
	}
}

// goldenMarker precedes a README block that copies a golden file.
var goldenMarker = regexp.MustCompile("(?m)^<!-- golden: (\\S+) -->\n```\n")

// TestGoldenReadme checks that each README block marked with a golden
// comment is a copy of its golden file, and rewrites it with -update.
func TestGoldenReadme(t *testing.T) {
	path := filepath.Join(repoRoot, "README.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rest := data
	n := 0
	for {
		m := goldenMarker.FindSubmatchIndex(rest)
		if m == nil {
			break
		}
		n++
		golden := string(rest[m[2]:m[3]])
		body := rest[m[1]:]
		end := bytes.Index(body, []byte("```\n"))
		if end < 0 {
			t.Fatalf("README.md: the block after <!-- golden: %s --> is not closed", golden)
		}
		want, err := os.ReadFile(filepath.Join(repoRoot, golden))
		if err != nil {
			t.Fatalf("README.md names a golden file: %v", err)
		}
		if !*update && !bytes.Equal(body[:end], want) {
			t.Errorf("README.md: the block after <!-- golden: %s --> is not a copy of it (run with -update to copy it):\n%s",
				golden, lineDiff(string(want), string(body[:end])))
		}
		out.Write(rest[:m[1]])
		out.Write(want)
		rest = body[end:]
	}
	out.Write(rest)
	if n == 0 {
		t.Fatal("README.md has no <!-- golden: PATH --> blocks")
	}
	if *update && !bytes.Equal(out.Bytes(), data) {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
