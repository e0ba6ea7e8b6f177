package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ordersync/ordersync/pkg/dispatch"
)

//go:generate go run . schema --dir ../../api

// runSchema is `worker schema`: it writes the generated contract (api/asyncapi.yaml,
// api/schemas/*.json, api/README.md) from the channel definitions the worker validates with,
// checks that a directory holds exactly that (--check), or prints one file (--print NAME).
func runSchema(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("schema", flag.ContinueOnError)
	fset.SetOutput(stderr)
	dir := fset.String("dir", "api", "the contract directory")
	check := fset.Bool("check", false, "write nothing; fail when the directory differs from the generated contract")
	printName := fset.String("print", "", "print one generated file to stdout, e.g. asyncapi.yaml or schemas/omni-saas.event.json")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fset.NArg() > 0 {
		return fmt.Errorf("schema: unexpected argument %q", fset.Arg(0))
	}
	files, err := dispatch.ContractFiles()
	if err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	switch {
	case *printName != "":
		b, ok := files[filepath.ToSlash(*printName)]
		if !ok {
			return fmt.Errorf("schema: no generated file %q (files: %s)", *printName, strings.Join(names, ", "))
		}
		_, err := stdout.Write(b)
		return err
	case *check:
		drift := contractDrift(*dir, files)
		if len(drift) > 0 {
			return fmt.Errorf("%s differs from the generated contract (run `go run ./cmd/worker schema --dir %s`):\n  %s",
				*dir, *dir, strings.Join(drift, "\n  "))
		}
		fmt.Fprintf(stdout, "%s is up to date (%d files)\n", *dir, len(files))
		return nil
	}
	for _, n := range stale(*dir, files) {
		if err := os.Remove(filepath.Join(*dir, n)); err != nil {
			return err
		}
	}
	for _, n := range names {
		p := filepath.Join(*dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, files[n], 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "wrote %d files to %s\n", len(files), *dir)
	return nil
}

// contractDrift lists the generated files missing or different in dir, and the stale ones.
func contractDrift(dir string, files map[string][]byte) []string {
	var drift []string
	for n, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(n)))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			drift = append(drift, n+": missing")
		case err != nil:
			drift = append(drift, n+": "+err.Error())
		case !bytes.Equal(got, want):
			drift = append(drift, n+": differs")
		}
	}
	for _, n := range stale(dir, files) {
		drift = append(drift, n+": not generated (stale)")
	}
	slices.Sort(drift)
	return drift
}

// stale lists the schema files in dir/schemas that are not generated (a removed channel).
func stale(dir string, files map[string][]byte) []string {
	entries, _ := os.ReadDir(filepath.Join(dir, "schemas"))
	var out []string
	for _, e := range entries {
		n := "schemas/" + e.Name()
		if _, ok := files[n]; !ok && strings.HasSuffix(n, ".json") {
			out = append(out, n)
		}
	}
	return out
}
