package he

// DerivedErrorFactor is derivedErrorFactor, for tests that compare
// measured errors with the model before its factor.
const DerivedErrorFactor = derivedErrorFactor
