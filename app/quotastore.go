package app

import (
	"context"
	"sync"
	"time"

	"github.com/fheserve/fheserve"
)

// dailyQuota is one of a model's daily quotas on a job: limit samples of
// account's jobs, or of all users' if account is "".
type dailyQuota struct {
	limit   int
	account string
	what    string
}

// tooLarge refuses a job of n samples that no day's quota could hold.
func (q dailyQuota) tooLarge(m *fheserve.Model, n int) error {
	if n > q.limit {
		return fheserve.Errorf(fheserve.EINVALID, "model %s: this job holds %d samples, more than %s of %d samples; submit at most %d samples per job", m.ID, n, q.what, q.limit, q.limit)
	}
	return nil
}

// refuse refuses a job of n samples when used samples leave too few.
func (q dailyQuota) refuse(m *fheserve.Model, used, n int, tomorrow time.Duration) error {
	switch left := q.limit - used; {
	case left <= 0:
		return retryLater(tomorrow, "model %s: %s of %d samples is used up until 00:00 UTC", m.ID, q.what, q.limit)
	case n > left:
		return retryLater(tomorrow, "model %s: %s of %d samples has %d left until 00:00 UTC, and this job holds %d", m.ID, q.what, q.limit, left, n)
	}
	return nil
}

// reservationTTL bounds how long a node that stopped before storing a job
// holds its samples of a quota.
const reservationTTL = 15 * time.Minute

// reserveDaily is checkDaily on a store that several nodes share: the
// store counts the samples and reserves n in one transaction, so that
// submissions through different nodes cannot pass the same last samples
// (the in-process count of pending samples sees one node only).
func (a *App) reserveDaily(ctx context.Context, qs fheserve.QuotaStore, who *fheserve.Account, m *fheserve.Model, n int, now time.Time, quotas []dailyQuota) (release func(), err error) {
	day := now.Truncate(24 * time.Hour)
	r := &fheserve.SampleReservation{ID: newID("res"), ModelID: m.ID, AccountID: who.ID, Samples: n,
		At: now, Since: day, Until: now.Add(reservationTTL)}
	var set []dailyQuota
	for _, q := range quotas {
		if q.limit == 0 {
			continue
		}
		if err := q.tooLarge(m, n); err != nil {
			return nil, err
		}
		set = append(set, q)
		r.Quotas = append(r.Quotas, fheserve.SampleQuota{AccountID: q.account, Limit: q.limit})
	}
	if len(set) == 0 {
		return func() {}, nil
	}
	used, ok, err := qs.ReserveSamples(ctx, r)
	if err != nil {
		return nil, err
	}
	if !ok {
		for i, q := range set {
			if err := q.refuse(m, used[i], n, day.Add(24*time.Hour).Sub(now)); err != nil {
				return nil, err
			}
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if err := qs.ReleaseSamples(context.WithoutCancel(ctx), r.ID); err != nil {
				a.log.Error("cannot release a quota reservation", "model", m.ID, "err", err)
			}
		})
	}, nil
}
