package he

import "weak"

// DerivedErrorFactor is derivedErrorFactor, for tests that compare
// measured errors with the model before its factor.
const DerivedErrorFactor = derivedErrorFactor

// SeedOf returns the seed AttachSeed recorded for ct.
func SeedOf(ct *Ciphertext) ([32]byte, bool) {
	v, ok := seeds.Load(weak.Make(ct))
	if !ok {
		return [32]byte{}, false
	}
	return v.([32]byte), true
}
