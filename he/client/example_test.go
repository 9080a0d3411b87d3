package client_test

import (
	"bytes"
	"fmt"
	"math"

	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/plan"
)

// A user encrypts a vector, the server decodes it from the wire, adds it
// to itself and sends back a compact result, which the user decrypts.
func Example() {
	params, err := he.NewParameters(plan.Params{LogN: 12, LogQ: []int{36, 30}, LogP: []int{37}, LogDefaultScale: 30})
	if err != nil {
		panic(err)
	}
	keys, evk, err := client.GenerateKeys(params, he.TopLevelKeys(params, nil, false))
	if err != nil {
		panic(err)
	}
	cts, err := keys.Encrypt([][]float64{{0.5, -1.25, 3}}, 0, params.DefaultScale())
	if err != nil {
		panic(err)
	}
	var upload, keyUpload bytes.Buffer
	if err := he.MarshalSeededCiphertexts(&upload, params, cts); err != nil {
		panic(err)
	}
	if err := he.MarshalEvalKeys(&keyUpload, params, evk); err != nil {
		panic(err)
	}
	fmt.Println("upload:", upload.Len(), "bytes")

	// Server side: decode, evaluate, sanitize, encode the result.
	in, err := he.UnmarshalCiphertexts(&upload, params, he.Limits{MaxCount: 1, MaxLevel: 0})
	if err != nil {
		panic(err)
	}
	srvKeys, err := he.UnmarshalEvalKeys(&keyUpload, params, he.KeyLimits{})
	if err != nil {
		panic(err)
	}
	params.RingQ().AtLevel(0).Add(in[0].Value[0], in[0].Value[0], in[0].Value[0])
	params.RingQ().AtLevel(0).Add(in[0].Value[1], in[0].Value[1], in[0].Value[1])
	san, err := he.NewSanitizer(params, srvKeys.Public)
	if err != nil {
		panic(err)
	}
	if err := san.Sanitize(in[0], 1<<10); err != nil {
		panic(err)
	}
	var result bytes.Buffer
	if err := he.MarshalResult(&result, params, in, 30); err != nil {
		panic(err)
	}
	fmt.Println("result:", result.Len(), "bytes")

	// Client side again.
	out, err := he.UnmarshalResult(&result, params, he.Limits{MaxCount: 1})
	if err != nil {
		panic(err)
	}
	values, err := keys.Decrypt(out)
	if err != nil {
		panic(err)
	}
	for _, v := range values[0][:3] {
		fmt.Printf("%.2f\n", math.Round(v*100)/100)
	}
	// Output:
	// upload: 19045 bytes
	// result: 30789 bytes
	// 1.00
	// -2.50
	// 6.00
}
