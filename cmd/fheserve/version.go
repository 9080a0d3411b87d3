package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/plan"
	"github.com/spf13/cobra"
)

// version is set at link time: go build -ldflags "-X main.version=v1.2.3".
// Without it the module version from the build info is used.
var version = ""

type versionOptions struct {
	IO *IOStreams
}

func newVersionCmd(f *Factory, runF func(*versionOptions) error) *cobra.Command {
	opts := &versionOptions{IO: f.IO}
	return leaf(&cobra.Command{
		Use:   "version",
		Short: "Print the version of fheserve and of its formats",
	}, opts, nil, runF, versionRun)
}

func versionRun(opts *versionOptions) error {
	v, lattigo, rev := version, "unknown", ""
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		for _, d := range info.Deps {
			if d.Path == "github.com/tuneinsight/lattigo/v6" {
				lattigo = d.Version
			}
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	out := opts.IO.Out
	fmt.Fprintf(out, "fheserve %s\n", v)
	if rev != "" {
		fmt.Fprintf(out, "commit:       %s\n", rev)
	}
	fmt.Fprintf(out, "go:           %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(out, "lattigo:      %s\n", lattigo)
	fmt.Fprintf(out, "plan format:  %d\n", plan.Version)
	fmt.Fprintf(out, "wire format:  %d\n", he.FormatVersion)
	return nil
}
