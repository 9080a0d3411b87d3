package http_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/blob"
	"github.com/fheserve/fheserve/internal/clustertest"
	"github.com/fheserve/fheserve/internal/pgtest"
	"github.com/fheserve/fheserve/natsjs"
	"github.com/fheserve/fheserve/postgres"
)

// The cluster mode's PostgreSQL stops with the tests.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// atRest is what a server keeps, wherever it keeps it, for the tests
// that look through all of it.
type atRest struct {
	dir   string              // the data directory
	db    string              // cluster: the PostgreSQL database's URL
	js    jetstream.JetStream // cluster: the NATS blob store's
	blobs fheserve.BlobStore
}

// mustServerIn is MustServerIn (in dir) in mode, and where its server
// keeps what it stores.
func mustServerIn(t *testing.T, mode, dir string, configure ...func(*app.Config)) (url string, store fheserve.Store, a *app.App, rest *atRest) {
	t.Helper()
	ctx := context.Background()
	if mode == clustertest.Embedded {
		url, store, a = MustServerIn(t, dir, configure...)
		b, err := blob.Open(filepath.Join(dir, "blobs"))
		check(t, err)
		return url, store, a, &atRest{dir: dir, blobs: b}
	}
	var cfg app.Config
	for _, f := range configure {
		f(&cfg)
	}
	c, n := clustertest.Start(t, cfg)
	st, err := postgres.Open(ctx, c.Engines.Store)
	check(t, err)
	t.Cleanup(func() { st.Close() })
	nc, js, err := natsjs.Dial(c.Engines.Blobs, "http-test")
	check(t, err)
	t.Cleanup(nc.Close)
	b, err := natsjs.OpenBlobs(ctx, js, natsjs.BlobsConfig{})
	check(t, err)
	return n.URL(), st, n.App, &atRest{dir: c.Dir, db: c.Engines.Store, js: js, blobs: b}
}

// eachFile calls f with every file of the data directory and, in a
// cluster, every object of the NATS blob store, and returns how many
// there are.
func (r *atRest) eachFile(t *testing.T, f func(path string, data []byte)) int {
	t.Helper()
	n := eachFile(t, r.dir, f)
	if r.js == nil {
		return n
	}
	ctx := context.Background()
	obs, err := r.js.ObjectStore(ctx, "fheserve_blobs")
	check(t, err)
	infos, err := obs.List(ctx)
	check(t, err)
	for _, info := range infos {
		data, err := obs.GetBytes(ctx, info.Name)
		check(t, err)
		f("nats:"+info.Name, data)
		n++
	}
	return n
}

// eachRow calls f with every value of every row of every table of the
// database, SQLite's in the data directory or the cluster's PostgreSQL,
// as bytes, and returns how many rows and tables there are.
func (r *atRest) eachRow(t *testing.T, f func(table, col string, b []byte)) (nrows, ntables int) {
	t.Helper()
	if r.db == "" {
		return eachRow(t, filepath.Join(r.dir, "db"), f)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, r.db)
	check(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)
	check(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	check(t, err)
	for _, table := range tables {
		rows, err := conn.Query(ctx, `SELECT * FROM "`+table+`"`)
		check(t, err)
		cols := rows.FieldDescriptions()
		for rows.Next() {
			vals, err := rows.Values()
			check(t, err)
			nrows++
			for i, v := range vals {
				f(table, cols[i].Name, valueBytes(v))
			}
		}
		check(t, rows.Err())
	}
	return nrows, len(tables)
}

// hasBlob reports whether the blob store holds key.
func (r *atRest) hasBlob(t *testing.T, key string) bool {
	t.Helper()
	rc, _, err := r.blobs.Open(context.Background(), key)
	if fheserve.ErrorCode(err) == fheserve.ENOTFOUND {
		return false
	}
	check(t, err)
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	check(t, err)
	return true
}
