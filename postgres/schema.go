package postgres

// migrations are applied in order, each once; append, never edit. The
// first is the SQLite store's schema at its version 6, less the retired
// event trail.
var migrations = []string{
	`CREATE TABLE accounts (
		id TEXT PRIMARY KEY,
		username TEXT NOT NULL UNIQUE,
		role TEXT NOT NULL,
		status TEXT NOT NULL,
		password_hash TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		reviewed_at BIGINT,
		reviewed_by TEXT NOT NULL DEFAULT ''
	);
	CREATE TABLE tokens (
		id TEXT PRIMARY KEY,
		hash TEXT NOT NULL UNIQUE,
		account_id TEXT NOT NULL REFERENCES accounts(id),
		kind TEXT NOT NULL,
		name TEXT NOT NULL DEFAULT '',
		created_at BIGINT NOT NULL,
		expires_at BIGINT NOT NULL,
		revoked_at BIGINT
	);
	CREATE INDEX tokens_account ON tokens(account_id);
	CREATE TABLE models (
		id TEXT PRIMARY KEY,
		owner_id TEXT NOT NULL REFERENCES accounts(id),
		name TEXT NOT NULL,
		version BIGINT NOT NULL,
		status TEXT NOT NULL,
		allow TEXT NOT NULL,
		packing TEXT NOT NULL,
		log_n BIGINT NOT NULL,
		input_shape TEXT NOT NULL,
		output_shape TEXT NOT NULL,
		batch_size BIGINT NOT NULL,
		rotations BIGINT NOT NULL,
		output_error DOUBLE PRECISION NOT NULL,
		plan_fingerprint TEXT NOT NULL,
		params_fingerprint TEXT NOT NULL,
		model_bytes BIGINT NOT NULL,
		plan_json BYTEA NOT NULL,
		weights_key TEXT NOT NULL,
		wrapped_key BYTEA NOT NULL,
		created_at BIGINT NOT NULL,
		retired_at BIGINT,
		limits TEXT NOT NULL DEFAULT '{}',
		sealed BOOLEAN NOT NULL DEFAULT false,
		max_sealed_keysets BIGINT NOT NULL DEFAULT 0,
		UNIQUE (owner_id, name, version)
	);
	CREATE TABLE keysets (
		id TEXT PRIMARY KEY,
		account_id TEXT NOT NULL REFERENCES accounts(id),
		model_id TEXT NOT NULL REFERENCES models(id),
		fingerprint TEXT NOT NULL,
		params_fingerprint TEXT NOT NULL,
		size BIGINT NOT NULL,
		status TEXT NOT NULL,
		blob_key TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		revoked_at BIGINT,
		replaced_by TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX keysets_account ON keysets(account_id);
	CREATE TABLE jobs (
		seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		id TEXT NOT NULL UNIQUE,
		account_id TEXT NOT NULL REFERENCES accounts(id),
		model_id TEXT NOT NULL REFERENCES models(id),
		keyset_id TEXT NOT NULL REFERENCES keysets(id),
		status TEXT NOT NULL,
		samples BIGINT NOT NULL DEFAULT 1,
		done BIGINT NOT NULL,
		total BIGINT NOT NULL,
		error_code TEXT NOT NULL DEFAULT '',
		error TEXT NOT NULL DEFAULT '',
		attempts BIGINT NOT NULL,
		input_bytes BIGINT NOT NULL,
		result_bytes BIGINT NOT NULL,
		input_key TEXT NOT NULL,
		result_key TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		started_at BIGINT,
		finished_at BIGINT,
		expires_at BIGINT,
		claim TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX jobs_status ON jobs(status);
	CREATE INDEX jobs_account ON jobs(account_id);
	CREATE INDEX jobs_model_created ON jobs(model_id, created_at);
	CREATE TABLE galleries (
		model_id TEXT PRIMARY KEY REFERENCES models(id),
		dim BIGINT NOT NULL,
		metric TEXT NOT NULL,
		threshold DOUBLE PRECISION NOT NULL,
		capacity BIGINT NOT NULL,
		templates BIGINT NOT NULL,
		revision BIGINT NOT NULL,
		blob_key TEXT NOT NULL,
		updated_at BIGINT NOT NULL
	);`,
	// Samples of daily quotas let through by some node and not stored as
	// a job yet (fheserve.QuotaStore).
	`CREATE TABLE quota_reservations (
		id TEXT PRIMARY KEY,
		model_id TEXT NOT NULL REFERENCES models(id),
		account_id TEXT NOT NULL,
		samples BIGINT NOT NULL,
		until BIGINT NOT NULL
	);
	CREATE INDEX quota_reservations_model ON quota_reservations(model_id, account_id);`,
	// The class labels of a model's outputs (a JSON list of strings; empty
	// for none), public like the rest of its summary.
	`ALTER TABLE models ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';`,
	// The token buckets of the models' rate limits (fheserve.RateStore):
	// a bucket's theoretical arrival time, in Unix nanoseconds (GCRA),
	// by its key (bytes: the App's keys hold NULs).
	`CREATE TABLE rate_buckets (
		key BYTEA PRIMARY KEY,
		tat BIGINT NOT NULL
	);`,
}
