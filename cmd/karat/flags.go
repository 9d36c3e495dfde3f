package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// envFlags is a FlagSet whose flags take their defaults from environment
// twins. A twin with a value the flag refuses is an error, like a bad flag.
type envFlags struct {
	fs     *flag.FlagSet
	twins  map[string]string // flag name -> env name
	envErr error
}

func newEnvFlags(name string) *envFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &envFlags{fs: fs, twins: map[string]string{}}
}

// twin registers env as the twin of the flag just defined and applies it.
func (e *envFlags) twin(name, env string) {
	e.twins[name] = env
	f := e.fs.Lookup(name)
	f.Usage += " (env " + env + ")"
	if v, ok := os.LookupEnv(env); ok {
		if err := f.Value.Set(v); err != nil && e.envErr == nil {
			e.envErr = fmt.Errorf("%s=%q: %v", env, v, err)
		}
	}
}

// parse parses args. It returns flag.ErrHelp for -h, after printing the
// usage to out.
func (e *envFlags) parse(args []string, out io.Writer) error {
	if e.envErr != nil {
		return e.envErr
	}
	err := e.fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		e.fs.SetOutput(out)
		fmt.Fprintf(out, "usage: karat %s [flags]\n\n", e.fs.Name())
		e.fs.PrintDefaults()
		return err
	}
	if err != nil {
		return err
	}
	if e.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", e.fs.Arg(0))
	}
	return nil
}

// set reports whether the flag was given on the command line or by its twin.
func (e *envFlags) set(name string) bool {
	found := false
	e.fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	if !found {
		_, found = os.LookupEnv(e.twins[name])
	}
	return found
}

// oneLine makes an error message fit one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
