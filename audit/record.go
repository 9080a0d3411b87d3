package audit

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/fheserve/fheserve"
)

// RecordVersion is the version of the canonical record encoding, written
// in every record as "v".
const RecordVersion = 1

// OutcomeOK is the outcome of an action that succeeded. A refused or
// failed action has the fheserve error code of its failure as outcome.
const OutcomeOK = "ok"

// Kinds of the objects a record names. A record naming an account is about
// that account; one naming a model is visible to the model's owner.
const (
	KindAccount = "account"
	KindModel   = "model"
	KindJob     = "job"
	KindKeySet  = "keyset"
	KindToken   = "token" // the token's id, never its secret value
)

// Limits of a record, so that no field can carry a bulk payload.
const (
	MaxObjects = 16
	maxIDLen   = 128
)

// Record is one security-relevant action: who did what to which objects,
// and how it ended. It has no field for passwords, tokens, keys, inputs,
// results or any other bulk or secret value, and Validate admits only
// short identifiers in every field, so none can be logged by mistake.
type Record struct {
	Time      time.Time // stored in UTC, to the microsecond
	ActorID   string    // the acting account's id; "" for the system or an unknown caller
	Actor     string    // the acting account's username; "" as for ActorID
	Action    string    // dotted lower-case verb, e.g. "account.approve", "job.submit"
	Objects   []Object  // the objects acted on, at most MaxObjects
	Outcome   string    // OutcomeOK or a fheserve error code
	RequestID string    // the request that caused the action, if any
}

// Object is an object a record names, by kind and id.
type Object struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

var (
	actionRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){0,3}$`)
	kindRE   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	idRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*$`)
)

// outcomes are the values Outcome may take.
var outcomes = []string{OutcomeOK,
	fheserve.EINVALID, fheserve.EUNSUPPORTED, fheserve.EINSECURE, fheserve.ETOOLARGE,
	fheserve.ENOTFOUND, fheserve.EUNAUTHORIZED, fheserve.EFORBIDDEN, fheserve.ECONFLICT,
	fheserve.ERATELIMIT, fheserve.EINTERNAL, fheserve.EUNAVAILABLE}

// Validate checks r. The actor's username must be a valid username: a
// failed login with a malformed name (which may be a password typed in the
// wrong field) must be recorded with an empty Actor.
func (r *Record) Validate() error {
	switch {
	case r.Time.IsZero():
		return fheserve.Errorf(fheserve.EINVALID, "audit record has no time")
	case r.Time.Year() < 2000 || r.Time.Year() > 9999:
		return fheserve.Errorf(fheserve.EINVALID, "audit record time %s is out of range", r.Time.UTC().Format(time.RFC3339))
	case !validID(r.ActorID, true):
		return fheserve.Errorf(fheserve.EINVALID, "audit record actor id is not a valid id")
	case !actionRE.MatchString(r.Action) || len(r.Action) > 64:
		return fheserve.Errorf(fheserve.EINVALID, "audit record action %q is not valid: use up to four dot-separated lower-case words", clip(r.Action))
	case !slices.Contains(outcomes, r.Outcome):
		return fheserve.Errorf(fheserve.EINVALID, "audit record outcome %q is not %q or an error code", clip(r.Outcome), OutcomeOK)
	case !validID(r.RequestID, true):
		return fheserve.Errorf(fheserve.EINVALID, "audit record request id is not a valid id")
	case len(r.Objects) > MaxObjects:
		return fheserve.Errorf(fheserve.EINVALID, "audit record names %d objects, the limit is %d", len(r.Objects), MaxObjects)
	}
	if r.Actor != "" {
		if err := fheserve.ValidUsername(r.Actor); err != nil {
			return fheserve.Errorf(fheserve.EINVALID, "audit record actor is not a valid username")
		}
	}
	for i, o := range r.Objects {
		if !kindRE.MatchString(o.Kind) || !validID(o.ID, false) {
			return fheserve.Errorf(fheserve.EINVALID, "audit record object %d (%q) is not a valid kind and id", i, clip(o.Kind))
		}
	}
	return nil
}

func validID(s string, empty bool) bool {
	if s == "" {
		return empty
	}
	return len(s) <= maxIDLen && idRE.MatchString(s)
}

func clip(s string) string {
	if len(s) <= 40 {
		return s
	}
	return s[:40] + "..."
}

// ParseObject reads an object written KIND:ID, as String writes it.
func ParseObject(s string) (Object, error) {
	kind, id, ok := strings.Cut(s, ":")
	if !ok || !kindRE.MatchString(kind) || !validID(id, false) {
		return Object{}, fheserve.Errorf(fheserve.EINVALID, "object %q is not KIND:ID, such as keyset:key_1", clip(s))
	}
	return Object{Kind: kind, ID: id}, nil
}

// String returns o as KIND:ID.
func (o Object) String() string { return o.Kind + ":" + o.ID }

// Names reports whether r names the object o.
func (r *Record) Names(o Object) bool { return slices.Contains(r.Objects, o) }

// recordV1 is the canonical encoding, version 1: JSON with the members in
// this (sorted) order, no insignificant white space, the time as
// "YYYY-MM-DDTHH:MM:SS.ffffffZ", and the objects sorted by kind then id
// without duplicates. Every member is always present.
type recordV1 struct {
	Action    string     `json:"action"`
	Actor     string     `json:"actor"`
	ActorID   string     `json:"actor_id"`
	Objects   []objectV1 `json:"objects"`
	Outcome   string     `json:"outcome"`
	RequestID string     `json:"request_id"`
	Time      string     `json:"time"`
	V         int        `json:"v"`
}

// objectV1 is an Object in the canonical encoding, members sorted.
type objectV1 struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
}

// timeLayout is fixed-width so that the encoding of a time is unique.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// normalize returns a copy of r as it is stored: the time in UTC to the
// microsecond, the objects sorted and without duplicates.
func (r *Record) normalize() *Record {
	c := *r
	c.Time = r.Time.UTC().Truncate(time.Microsecond)
	c.Objects = slices.Clone(r.Objects)
	slices.SortFunc(c.Objects, func(a, b Object) int {
		if k := strings.Compare(a.Kind, b.Kind); k != 0 {
			return k
		}
		return strings.Compare(a.ID, b.ID)
	})
	c.Objects = slices.Compact(c.Objects)
	if c.Objects == nil {
		c.Objects = []Object{}
	}
	return &c
}

// Encode validates r and returns its canonical encoding: the bytes that
// are stored, served and hashed into the log.
func (r *Record) Encode() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	n := r.normalize()
	objs := make([]objectV1, len(n.Objects))
	for i, o := range n.Objects {
		objs[i] = objectV1{ID: o.ID, Kind: o.Kind}
	}
	return json.Marshal(recordV1{
		Action: n.Action, Actor: n.Actor, ActorID: n.ActorID, Objects: objs,
		Outcome: n.Outcome, RequestID: n.RequestID, Time: n.Time.Format(timeLayout), V: RecordVersion,
	})
}

// DecodeRecord parses a canonical record encoding. It accepts exactly the
// bytes Encode produces, so that one record has one encoding and one hash.
func DecodeRecord(data []byte) (*Record, error) {
	var v recordV1
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&v); err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "audit record is not valid JSON: %v", err)
	}
	if v.V != RecordVersion {
		return nil, fheserve.Errorf(fheserve.EINVALID, "audit record has version %d; this program reads version %d", v.V, RecordVersion)
	}
	t, err := time.Parse(timeLayout, v.Time)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "audit record time %q is not valid", clip(v.Time))
	}
	r := &Record{Time: t, ActorID: v.ActorID, Actor: v.Actor, Action: v.Action,
		Outcome: v.Outcome, RequestID: v.RequestID}
	for _, o := range v.Objects {
		r.Objects = append(r.Objects, Object{Kind: o.Kind, ID: o.ID})
	}
	again, err := r.Encode()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, data) {
		return nil, fheserve.Errorf(fheserve.EINVALID, "audit record is not in canonical form")
	}
	return r.normalize(), nil
}
