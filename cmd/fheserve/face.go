package main

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/face"
	"github.com/fheserve/fheserve/npy"
	"github.com/spf13/cobra"
)

// newFaceCmd groups the commands that compute face embeddings on this
// device, with the face package (face-api's networks, in Go, embedded).
func newFaceCmd(f *Factory) *cobra.Command {
	return group(&cobra.Command{
		Use:   "face",
		Short: "Face embeddings computed on this device, for galleries, verify and identify",
	}, newFaceEmbedCmd(f, nil))
}

type faceEmbedOptions struct {
	IO     *IOStreams
	Images []string
	Output string
	All    bool
	Raw    bool
}

func newFaceEmbedCmd(f *Factory, runF func(*faceEmbedOptions) error) *cobra.Command {
	opts := &faceEmbedOptions{IO: f.IO}
	cmd := leaf(&cobra.Command{
		Use:   "embed IMAGE... --output E.npy [--all] [--raw]",
		Short: "Compute the face embedding of each photo and write them as a float32 .npy",
		Long: `Finds the face in each photo (JPEG or PNG) and computes its 128-value
embedding on this device, with the networks of @vladmandic/face-api 1.7.15
(TinyFaceDetector, FaceLandmark68Net, FaceRecognitionNet), ported to Go and
built in: nothing is downloaded and the photo never leaves the device.

The embeddings are written as one row per face, shape [faces, 128], in the
order of the photos, scaled to unit length as a cosine gallery takes them
(--raw keeps face-api's own values). A photo must hold exactly one face,
unless --all takes every face, left to right; the faces found are listed on
standard error. A close-up in which the detector finds no face is looked at
again inside a black border, as a wider shot.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fheserve.Errorf(fheserve.EINVALID, "no photo given: %s IMAGE... --output E.npy", cmd.CommandPath())
			}
			return nil
		},
	}, opts, nil, runF, faceEmbedRun, func(_ *cobra.Command, args []string) error {
		opts.Images = args
		return nil
	}, validated(opts.validate))
	fs := cmd.Flags()
	fs.StringVarP(&opts.Output, "output", "o", "", "`file` to write the embeddings to, float32 .npy, or - for standard output (required)")
	fs.BoolVar(&opts.All, "all", false, "take every face of each photo, left to right, instead of refusing a photo with several")
	fs.BoolVar(&opts.Raw, "raw", false, "write face-api's descriptors as they are, not scaled to unit length")
	return cmd
}

func (o *faceEmbedOptions) validate() error {
	if o.Output == "" {
		return requiredFlag("--output")
	}
	return nil
}

func faceEmbedRun(opts *faceEmbedOptions) error {
	e, err := face.New()
	if err != nil {
		return err
	}
	var rows []float64
	for _, path := range opts.Images {
		img, err := readPhoto(path)
		if err != nil {
			return err
		}
		faces := e.Find(img)
		face.SortLeftToRight(faces)
		if !opts.All && len(faces) != 1 {
			return faceCountError(path, len(faces))
		}
		for i, f := range faces {
			fmt.Fprintf(opts.IO.ErrOut, "%s: face %d of %d at x %.0f, y %.0f, %.0f x %.0f (score %.2f)\n",
				path, i+1, len(faces), f.Box.X, f.Box.Y, f.Box.Width, f.Box.Height, f.Score)
			if opts.Raw {
				rows = append(rows, asFloat64(f.Descriptor)...)
			} else {
				rows = append(rows, face.UnitLength(f.Descriptor)...)
			}
		}
	}
	if len(rows) == 0 {
		return fheserve.Errorf(fheserve.EINVALID, "no face found in %d photos", len(opts.Images))
	}
	a := &npy.Array{Shape: []int{len(rows) / face.Dim, face.Dim}, Data: rows}
	if opts.Output == "-" {
		if err := npy.Write(opts.IO.Out, a); err != nil {
			return fmt.Errorf("cannot write the embeddings to standard output: %w", err)
		}
		return nil
	}
	if err := npy.WriteFile(opts.Output, a); err != nil {
		return fmt.Errorf("cannot write the embeddings to %q: %w", opts.Output, err)
	}
	return nil
}

// imageEmbedding is what --image gives verify and identify in place of
// --embedding: the unit-length embedding of the one face in the photo at
// path, computed here, as a [1, 128] array.
func imageEmbedding(path string) (*npy.Array, error) {
	e, err := face.New()
	if err != nil {
		return nil, err
	}
	img, err := readPhoto(path)
	if err != nil {
		return nil, err
	}
	faces := e.Find(img)
	if len(faces) != 1 {
		return nil, faceCountError(path, len(faces))
	}
	return &npy.Array{Shape: []int{1, face.Dim}, Data: face.UnitLength(faces[0].Descriptor)}, nil
}

func readPhoto(path string) (*face.Image, error) {
	img, err := face.ReadImage(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fheserve.Errorf(fheserve.ENOTFOUND, "photo %q not found", path)
	case err != nil:
		return nil, fheserve.Errorf(fheserve.EINVALID, "cannot read photo %q: %v (JPEG or PNG)", path, err)
	}
	return img, nil
}

func faceCountError(path string, n int) error {
	if n == 0 {
		return fheserve.Errorf(fheserve.EINVALID, "no face found in %q: use a photo where the face is upright, lit and at least about 60 pixels wide", path)
	}
	return fheserve.Errorf(fheserve.EINVALID, "%d faces found in %q: crop the photo to the one face to use (face embed --all takes them all)", n, path)
}

// asFloat64 widens d.
func asFloat64(d []float32) []float64 {
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = float64(v)
	}
	return out
}
