package http_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/internal/clustertest"
	"github.com/fheserve/fheserve/sdk"
	_ "modernc.org/sqlite"
)

// TestNoSecretsStored runs the whole flow (deploy, keys, two predictions
// on random inputs) and then reads every file under the data directory
// and every row of every table of the database, and looks for the user's
// secret key (its stored form and its coefficients as uint64 words, in
// coefficient and NTT-Montgomery form, either byte order) and for the
// plaintext inputs and decrypted outputs (as float64 and float32 words,
// either byte order, and as decimal text). The server must hold none.
func TestNoSecretsStored(t *testing.T) { clustertest.InModes(t, testNoSecretsStored) }

func testNoSecretsStored(t *testing.T, mode string) {
	ctx := context.Background()
	url, _, a, rest := mustServerIn(t, mode, t.TempDir())
	login := signup(t, url, a)
	owner, user := login("olivia", fheserve.RoleOwner), login("ulrich", fheserve.RoleUser)
	onnx, err := os.ReadFile(filepath.Join("..", "testdata", "onnx", "mlp_square.onnx"))
	check(t, err)
	m, err := owner.Deploy(ctx, &fheserve.DeployRequest{Name: "mlp_square", ONNX: onnx})
	check(t, err)
	keys, err := user.GenerateKeys(ctx, m.ID)
	check(t, err)
	_, err = user.UploadKeys(ctx, keys, "")
	check(t, err)

	rng := rand.New(rand.NewPCG(1, 2))
	var inputs, outputs []float64
	for range 2 {
		x := make([]float64, keys.Plan.InputSize())
		for i := range x {
			x[i] = 2*rng.Float64() - 1
		}
		y, err := user.Predict(ctx, keys, x, 1, nil)
		check(t, err)
		inputs, outputs = append(inputs, x...), append(outputs, y...)
	}

	secret, err := keys.MarshalSecret()
	check(t, err)
	needles := secretNeedles(t, keys, secret)
	needles = append(needles, valueNeedles("input", inputs)...)
	needles = append(needles, valueNeedles("output", outputs)...)

	// The patterns do find what they look for.
	var planted []byte
	planted = binary.LittleEndian.AppendUint64(planted, math.Float64bits(inputs[3]))
	planted = append(planted, secret[40:80]...)
	planted = binary.BigEndian.AppendUint32(planted, math.Float32bits(float32(outputs[0])))
	planted = binary.BigEndian.AppendUint32(planted, math.Float32bits(float32(outputs[1])))
	var found int
	for _, n := range needles {
		if bytes.Contains(planted, n.b) {
			found++
		}
	}
	if found < 3 {
		t.Fatalf("the patterns found %d of 3 planted values", found)
	}

	// Every file, the database's included, and every blob.
	var scanned int
	files := rest.eachFile(t, func(path string, data []byte) {
		scanned += len(data)
		for _, n := range needles {
			if bytes.Contains(data, n.b) {
				t.Errorf("%s holds the %s", path, n.what)
			}
		}
	})

	// Every row, since SQLite may split a long value over pages.
	nrows, tables := rest.eachRow(t, func(table, col string, b []byte) {
		for _, n := range needles {
			if bytes.Contains(b, n.b) {
				t.Errorf("table %s, column %s holds the %s", table, col, n.what)
			}
		}
	})
	if files < 4 || nrows < 10 {
		t.Fatalf("scanned only %d files and %d rows: the flow stored less than expected", files, nrows)
	}
	t.Logf("%d patterns: none in %d files (%d bytes) or %d rows of %d tables", len(needles), files, scanned, nrows, tables)
}

type needle struct {
	what string
	b    []byte
}

// eachFile calls f with the path and contents of every file below dir
// and returns how many there are.
func eachFile(t *testing.T, dir string, f func(path string, data []byte)) int {
	t.Helper()
	files := 0
	check(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		f(path, data)
		return nil
	}))
	return files
}

// eachRow calls f with every value of every row of every table of the
// SQLite database at path, as bytes, and returns how many rows and tables
// there are.
func eachRow(t *testing.T, path string, f func(table, col string, b []byte)) (nrows, ntables int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	check(t, err)
	defer db.Close()
	var tables []string
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	check(t, err)
	for rows.Next() {
		var name string
		check(t, rows.Scan(&name))
		tables = append(tables, name)
	}
	check(t, rows.Err())
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		check(t, err)
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			check(t, rows.Scan(ptrs...))
			nrows++
			for i, v := range vals {
				f(table, cols[i], valueBytes(v))
			}
		}
		check(t, rows.Err())
		rows.Close()
	}
	return nrows, len(tables)
}

// valueBytes is a database value as the bytes a scan looks through.
func valueBytes(v any) []byte {
	switch v := v.(type) {
	case []byte:
		return v
	case string:
		return []byte(v)
	default:
		return fmt.Append(nil, v)
	}
}

// secretNeedles returns byte patterns of the secret key: slices of its
// stored form and runs of its coefficients in the forms Lattigo holds
// and writes them.
func secretNeedles(t *testing.T, keys *sdk.Keys, secret []byte) []needle {
	body := secret[40:] // after the header (he/client's secretHeaderLen)
	out := []needle{{"secret key", secret}}
	for _, off := range []int{0, len(body) / 2, len(body) - 32} {
		out = append(out, needle{fmt.Sprintf("secret key's bytes at %d", off), body[off : off+32]})
	}
	params, err := he.NewParameters(keys.Plan.Params)
	check(t, err)
	n := params.N()
	ternary := make([]int, n)
	for i := range ternary {
		ternary[i] = []int{0, 1, -1, 0}[body[i/4]>>(2*(i%4))&3]
	}
	// A window of 8 coefficients with at least 4 non-zero ones, so that
	// it cannot match zeros by chance.
	start := 0
	for nz := 0; nz < 4; start++ {
		nz = 0
		for _, c := range ternary[start : start+8] {
			if c != 0 {
				nz++
			}
		}
		if nz >= 4 {
			break
		}
	}
	ringQ := params.RingQ()
	s := ringQ.NewPoly()
	for i, q := range params.Q() {
		for j, c := range ternary {
			s.Coeffs[i][j] = uint64((int64(c) + int64(q)) % int64(q))
		}
	}
	words := func(form string, row []uint64) {
		for _, order := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
			var b []byte
			for _, w := range row[start : start+8] {
				b = order.AppendUint64(b, w)
			}
			out = append(out, needle{fmt.Sprintf("secret key's coefficients (%s, %v)", form, order), b})
		}
	}
	words("coefficients mod q0", s.Coeffs[0])
	ringQ.NTT(s, s)
	words("NTT mod q0", s.Coeffs[0])
	ringQ.MForm(s, s)
	words("NTT-Montgomery mod q0", s.Coeffs[0])
	words("NTT-Montgomery mod q1", s.Coeffs[min(1, len(s.Coeffs)-1)])
	return out
}

// valueNeedles returns byte patterns of plaintext values: each value as a
// float64 and as text, and pairs of neighbours as float32 (a single
// float32 would match random bytes by chance).
func valueNeedles(what string, xs []float64) []needle {
	var out []needle
	for i, x := range xs {
		for _, order := range []binary.AppendByteOrder{binary.LittleEndian, binary.BigEndian} {
			out = append(out, needle{fmt.Sprintf("%s %d as float64 (%v)", what, i, order), order.AppendUint64(nil, math.Float64bits(x))})
			if i+1 < len(xs) {
				b := order.AppendUint32(nil, math.Float32bits(float32(x)))
				out = append(out, needle{fmt.Sprintf("%s %d-%d as float32 (%v)", what, i, i+1, order), order.AppendUint32(b, math.Float32bits(float32(xs[i+1])))})
			}
		}
		if txt := strconv.FormatFloat(x, 'g', 8, 64); len(txt) >= 8 {
			out = append(out, needle{fmt.Sprintf("%s %d as text", what, i), []byte(txt)})
		}
	}
	return out
}
