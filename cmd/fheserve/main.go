// Command fheserve compiles machine-learning models to CKKS homomorphic
// encryption plans and runs encrypted predictions with them.
//
// Every command reports failure as one line on standard error,
// "fheserve: <message>", and exits with status 2 when the input was
// invalid or unsupported and 1 otherwise.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/fheserve/fheserve"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, systemFactory(), os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes the command line args with what f gives and returns the
// exit status. It is main without the process: tests call it directly.
func run(ctx context.Context, f *Factory, args []string) (code int) {
	stderr := f.IO.ErrOut
	defer func() {
		// A panic in the engine is a bug; report it on one line rather
		// than as a stack trace.
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "fheserve: internal error: %s\n", oneLine(fmt.Sprint(r)))
			code = 1
		}
	}()
	root := newRootCmd(f)
	root.SetArgs(args)
	root.SetIn(f.IO.In)
	root.SetOut(f.IO.Out)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "fheserve: %s\n", oneLine(err.Error()))
	return exitCode(err)
}

// exitCode is 2 for input the user can fix (invalid, unsupported, missing
// or too large) and 1 for everything else.
func exitCode(err error) int {
	switch fheserve.ErrorCode(err) {
	case "":
		return 0
	case fheserve.EINVALID, fheserve.EUNSUPPORTED, fheserve.ENOTFOUND, fheserve.ETOOLARGE, fheserve.EINSECURE:
		return 2
	}
	return 1
}

// oneLine joins the lines of a message so that an error is always one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
