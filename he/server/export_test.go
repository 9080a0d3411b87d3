package server

// FusedSteps reports, per step of m, whether it is a product left
// unrelinearized and unrescaled for its linear readers (fusedProduct).
func FusedSteps(m *Model) []bool {
	f := make([]bool, len(m.steps))
	for i := range m.steps {
		f[i] = m.steps[i].fused
	}
	return f
}
