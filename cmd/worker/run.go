package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/ordersync/ordersync/internal/config"
	"github.com/ordersync/ordersync/pkg/dispatch"
	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

var _ topsim.Rules = (*dispatch.Registry)(nil)

const usage = `usage: worker [command] [flags]

commands:
  run      the production worker (default): worker run --config configs/ordersync.yaml [--check]
  dev      everything on one machine: embedded Kafka, Redis and TOP simulator [--demo]
  topsim   the TOP gateway simulator alone: worker topsim --addr 127.0.0.1:18080 --app-key K --app-secret S
  replay   re-publish dead letters to their source topics [--dry-run] [--channel ID] [--event-id ID]
           [--error-contains TEXT] [--include-rejected]
  validate check events offline as the worker would: worker validate [--channel ID] FILE|- ...
  schema   write the generated contract (AsyncAPI, JSON Schemas) to api/ [--dir DIR] [--check] [--print FILE]
  version  print the version

Configuration: --config PATH (YAML) and ORDERSYNC_* environment variables; see configs/ordersync.yaml.
`

// run dispatches to a subcommand. It is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runWorker(ctx, args, stdout, stderr, environ)
	case "dev":
		return runDev(ctx, args, stdout, stderr, environ)
	case "topsim":
		reg, err := dispatch.NewRegistry(nil)
		if err != nil {
			return err
		}
		return runTopsim(ctx, args, reg, stdout)
	case "replay":
		return runReplay(ctx, args, stdout, stderr, environ)
	case "validate":
		return runValidate(args, os.Stdin, stdout, stderr)
	case "schema":
		return runSchema(args, stdout, stderr)
	case "version":
		fmt.Fprintf(stdout, "ordersync %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// runWorker is `worker run`.
func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML); ORDERSYNC_* variables override it")
	check := fs.Bool("check", false, "validate the configuration and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, err := loadValidConfig(*path, environ, true)
	if err != nil {
		return err
	}
	var sessions map[string]string
	if cfg.Top.SessionsFile != "" {
		if sessions, err = config.LoadSessions(cfg.Top.SessionsFile); err != nil {
			return err
		}
		if err := cfg.Top.CheckDefaultSeller(sessions); err != nil {
			return fmt.Errorf("invalid configuration:\n%w", err)
		}
	}
	if *check {
		fmt.Fprintf(stdout, "configuration OK (%d channel(s) enabled, %d seller session(s))\n", len(cfg.ChannelTopics()), len(sessions))
		return nil
	}
	return serve(ctx, cfg, sessions, stderr, testHooks)
}

// loadValidConfig loads the file and environment and validates the result; requireSecrets asks
// for the TOP credentials too (commands that call the gateway).
func loadValidConfig(path string, environ []string, requireSecrets bool) (config.Config, error) {
	cfg, err := config.Load(path, environ)
	if err != nil {
		return config.Config{}, err
	}
	validate := cfg.ValidateWithoutCredentials
	if requireSecrets {
		validate = cfg.Validate
	}
	if err := validate(); err != nil {
		return config.Config{}, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}
