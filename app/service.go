package app

import "github.com/fheserve/fheserve"

// The App is every service the HTTP layer serves.
var (
	_ fheserve.AccountService = (*App)(nil)
	_ fheserve.ModelService   = (*App)(nil)
	_ fheserve.KeySetService  = (*App)(nil)
	_ fheserve.JobService     = (*App)(nil)
	_ fheserve.OpsService     = (*App)(nil)
)
