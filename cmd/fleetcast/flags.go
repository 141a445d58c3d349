package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

var errFlagHelp = errors.New("help shown")

// newFlagSet returns a flag set whose usage text starts with an example.
func newFlagSet(name, usage string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: %s\n\nFlags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, mapping -h to errFlagHelp and bad flags to a usage error.
func parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return errFlagHelp
	}
	if err != nil {
		return usageError{err.Error()}
	}
	return nil
}
