// Command ppm decodes images with face.DecodeImage, as the face package
// does, and writes each as a binary PPM into the output directory, so that
// reference.js runs face-api on exactly the pixels the Go port sees.
//
//	go run ./tools/faceapi/ppm -o DIR a.jpg b.jpg ...
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fheserve/fheserve/face"
)

func main() {
	out := flag.String("o", ".", "output directory")
	flag.Parse()
	for _, path := range flag.Args() {
		if err := convert(path, *out); err != nil {
			fmt.Fprintln(os.Stderr, "ppm:", err)
			os.Exit(1)
		}
	}
}

func convert(path, dir string) error {
	img, err := face.ReadImage(path)
	if err != nil {
		return err
	}
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)) + ".ppm"
	w, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "P6\n%d %d\n255\n", img.Width, img.Height)
	bw.Write(img.Pix)
	if err := bw.Flush(); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
