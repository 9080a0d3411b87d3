package client

import "github.com/tuneinsight/lattigo/v6/core/rlwe"

// Secret returns the secret key, for tests that measure key errors.
func (k *Keys) Secret() *rlwe.SecretKey { return k.sk }
