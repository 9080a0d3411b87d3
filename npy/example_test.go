package npy_test

import (
	"bytes"
	"fmt"

	"github.com/fheserve/fheserve/npy"
)

func Example() {
	var buf bytes.Buffer
	a := &npy.Array{Shape: []int{2, 3}, Data: []float64{1, 2, 3, 4, 5, 6.5}}
	if err := npy.Write(&buf, a); err != nil {
		fmt.Println(err)
		return
	}
	b, err := npy.Read(&buf, 1<<20)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(b.Shape, b.Data)

	_, err = npy.Read(bytes.NewReader([]byte("PK\x03\x04 not npy")), 1<<20)
	fmt.Println(err)
	// Output:
	// [2 3] [1 2 3 4 5 6.5]
	// npy: not a .npy file: bad magic
}
