package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/timgw/timgw/core/scripttest"
)

// scriptTest is `timgw script-test [-v] PATH...`: it runs the Lua hook fixtures of each
// PATH (a *.yaml file, or a directory of them) and prints one line per failed case (every
// case with -v). Exit status 0: all passed; 1: a case failed or a fixture did not load;
// 2: bad arguments.
func scriptTest(args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("timgw script-test", flag.ContinueOnError)
	fl.SetOutput(stderr)
	verbose := fl.Bool("v", false, "print passing cases too")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: timgw script-test [-v] PATH...\n\nRuns Lua hook fixtures (a *.yaml file or a directory of them; see scripts/README.md).")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() == 0 {
		fl.Usage()
		return 2
	}
	passed, failed := 0, 0
	for _, path := range fl.Args() {
		results, err := scripttest.RunDir(context.Background(), path)
		if err != nil {
			fmt.Fprintf(stdout, "FAIL %s: %v\n", path, err)
			failed++
			continue
		}
		for _, r := range results {
			if r.Err != nil {
				failed++
				fmt.Fprintf(stdout, "FAIL %s: %s: %v\n", r.File, r.Case, r.Err)
				continue
			}
			passed++
			if *verbose {
				fmt.Fprintf(stdout, "ok   %s: %s\n", r.File, r.Case)
			}
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return 1
	}
	return 0
}
