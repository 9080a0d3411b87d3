// Package audit is fheserve's tamper-evident transparency log of
// security-relevant actions, built on golang.org/x/mod/sumdb/tlog (RFC
// 6962 Merkle trees) and golang.org/x/mod/sumdb/note (Ed25519-signed
// C2SP tlog-checkpoints).
//
// A Record (time, actor, action, objects, outcome, request id) is stored
// in its canonical encoding, which is what the log hashes: tlog.RecordHash
// of the bytes is leaf Index of the tree. A Log appends records to a Store
// (the SQLite one is package audit/sqlite) with the tree's stored hashes
// and a newly signed Checkpoint in one transaction. NewHandler serves the
// latest checkpoint, records with inclusion proofs and consistency proofs;
// Client fetches and checks them against a pinned verifier key; Verify
// recomputes a stored log offline and names the first record that was
// altered, removed or moved.
//
// Canonical record encoding, version 1 (the bytes hashed), one line of
// JSON with members in this order and no white space:
//
//	{"action":"job.submit","actor":"alice","actor_id":"acc1",
//	 "objects":[{"id":"m1","kind":"model"}],"outcome":"ok",
//	 "request_id":"r1","time":"2026-11-22T04:27:00.123456Z","v":1}
//
// Checkpoint body (C2SP tlog-checkpoint), signed as a note:
//
//	<origin>\n<tree size>\n<base64 root hash>\n
//
// docs/audit.md describes the formats, the API and the threat model.
package audit
