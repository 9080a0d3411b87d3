package audit_test

import (
	"context"
	"fmt"
	"time"

	"github.com/fheserve/fheserve/audit"
)

// The service appends a record for each security-relevant action; the
// returned index is the record's leaf in the Merkle tree, and a signed
// checkpoint covering it is stored before Append returns.
func ExampleLog_Append() {
	ctx := context.Background()
	key, _ := audit.GenerateKey("fhe.example.com/audit")
	l, _ := audit.New(ctx, audit.NewMemStore(), key)
	defer l.Close()

	i, err := l.Append(ctx, &audit.Record{
		Time:      time.Date(2026, 11, 22, 4, 27, 0, 0, time.UTC),
		ActorID:   "acc_7",
		Actor:     "alice",
		Action:    "job.submit",
		Objects:   []audit.Object{{Kind: audit.KindModel, ID: "m_1"}, {Kind: audit.KindJob, ID: "j_9"}},
		Outcome:   audit.OutcomeOK,
		RequestID: "req_42",
	})
	if err != nil {
		panic(err)
	}
	msg, _ := l.Checkpoint()
	c, _ := audit.OpenCheckpoint(msg, l.VerifierKey())
	e, _ := l.Entry(ctx, i, nil)
	fmt.Printf("record %d in a tree of %d, origin %s\n%s\n", i, c.N, c.Origin, e.Data)
	// Output:
	// record 0 in a tree of 1, origin fhe.example.com/audit
	// {"action":"job.submit","actor":"alice","actor_id":"acc_7","objects":[{"id":"j_9","kind":"job"},{"id":"m_1","kind":"model"}],"outcome":"ok","request_id":"req_42","time":"2026-11-22T04:27:00.000000Z","v":1}
}
