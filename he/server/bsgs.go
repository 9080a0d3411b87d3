package server

import "github.com/tuneinsight/lattigo/v6/circuits/common/lintrans"

// BSGS returns the baby-step (hoisted) and giant-step rotations that the
// evaluator's linear transformation uses for the given diagonals, slot
// count and log2 baby-step giant-step ratio: the compiler lists their keys
// and counts their cost from it.
func BSGS(diags []int, slots, logRatio int) (babies, giants []int) {
	n1 := lintrans.FindBestBSGSRatio(diags, slots, logRatio)
	_, rotN1, rotN2 := lintrans.BSGSIndex(diags, slots, n1)
	for _, r := range rotN2 {
		if r != 0 {
			babies = append(babies, r)
		}
	}
	for _, r := range rotN1 {
		if r != 0 {
			giants = append(giants, r)
		}
	}
	return babies, giants
}
