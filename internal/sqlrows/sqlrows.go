// Package sqlrows collects the rows of a database/sql query, for the SQLite
// stores (the service's and the audit log's).
package sqlrows

import (
	"context"
	"database/sql"
)

// Scanner is a row (sql.Row or sql.Rows) that a scan function reads.
type Scanner = interface{ Scan(dest ...any) error }

// Collect runs query and scans each row with scan. On an error while
// reading the rows it returns the rows read before it, with the error.
func Collect[T any](ctx context.Context, db *sql.DB, scan func(Scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
