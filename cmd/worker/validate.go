package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/ordersync/ordersync/pkg/dispatch"
)

// runValidate is `worker validate`: it checks events offline exactly as the worker does — the
// envelope (DecodeEnvelope: size, UTF-8, depth, JSON, event_id...), the channel's API page rules
// and the idempotency key derivation (Channel.Prepare) — and prints one line per event: "ok" with
// the channel and idempotency key, or the error with its JSON path, as a rejected outcome's
// error.msg would say it. It fails when any event is invalid, for a publisher's CI.
//
// A FILE holds one event (the whole file is the message value), or one event per line when its
// name ends in .ndjson or .jsonl, or with --ndjson ("-" is standard input). The channel is
// --channel, else inferred from each event's request: every channel's top-level parameter names
// are its own. Not checked: the seller's session key, which depends on the deployment.
func runValidate(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	channelID := fs.String("channel", "", "the channel the events are for (default: inferred from each request's parameters)")
	ndjson := fs.Bool("ndjson", false, "every file holds one event per line (default for *.ndjson and *.jsonl)")
	maxBytes := fs.Int("max-bytes", dispatch.DefaultMaxBytes, "the largest message value (worker.max_message_bytes)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: worker validate [--channel ID] [--ndjson] [--max-bytes N] FILE|- ...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("validate: name a FILE, or - for standard input")
	}
	reg, err := dispatch.NewRegistry(nil)
	if err != nil {
		return err
	}
	var fixed *dispatch.Channel
	if *channelID != "" {
		c, ok := reg.ByID(*channelID)
		if !ok {
			return fmt.Errorf("--channel: unknown channel %q (known: %s)", *channelID, strings.Join(dispatch.ChannelIDs(), ", "))
		}
		fixed = c
	}
	v := &validator{reg: reg, fixed: fixed, maxBytes: *maxBytes, out: stdout}
	for _, name := range fs.Args() {
		if err := v.file(name, stdin, *ndjson || strings.HasSuffix(name, ".ndjson") || strings.HasSuffix(name, ".jsonl")); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "%d event(s): %d valid, %d invalid\n", v.total, v.total-v.invalid, v.invalid)
	if v.invalid > 0 {
		return fmt.Errorf("validate: %d of %d event(s) invalid", v.invalid, v.total)
	}
	return nil
}

type validator struct {
	reg            *dispatch.Registry
	fixed          *dispatch.Channel
	maxBytes       int
	out            io.Writer
	total, invalid int
}

// file checks the events of one file ("-" = stdin).
func (v *validator) file(name string, stdin io.Reader, perLine bool) error {
	var r io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	if !perLine {
		value, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		v.event(name, value)
		return nil
	}
	br := bufio.NewReader(r)
	for line := 1; ; line++ {
		value, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(value)) > 0 {
			value = bytes.TrimSuffix(bytes.TrimSuffix(value, []byte{'\n'}), []byte{'\r'})
			v.event(fmt.Sprintf("%s:%d", name, line), value)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s:%d: %w", name, line, err)
		}
	}
}

// event checks one message value, as the pipeline does, and prints the verdict.
func (v *validator) event(where string, value []byte) {
	v.total++
	fail := func(channel string, env *dispatch.Envelope, err error) {
		v.invalid++
		id := ""
		if env != nil {
			id = fmt.Sprintf(" event_id=%q", env.EventID)
		}
		fmt.Fprintf(v.out, "%s: invalid %s%s: %v\n", where, channel, id, err)
	}
	env, err := dispatch.DecodeEnvelope(value, v.maxBytes)
	if err != nil {
		fail(v.channelName(), nil, err)
		return
	}
	ch := v.fixed
	if ch == nil {
		if ch, err = v.infer(env.Request); err != nil {
			fail("?", env, err)
			return
		}
	}
	p, err := ch.Prepare(env)
	if err != nil {
		fail(ch.ID, env, err)
		return
	}
	fmt.Fprintf(v.out, "%s: ok %s event_id=%q idempotency_key=%q\n", where, ch.ID, p.EventID, p.IdempotencyKey)
}

func (v *validator) channelName() string {
	if v.fixed == nil {
		return "?"
	}
	return v.fixed.ID
}

// infer finds the channel whose parameters the request uses. Each channel's top-level parameter
// names are its own, so one known name decides.
func (v *validator) infer(request json.RawMessage) (*dispatch.Channel, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(request, &members); err != nil {
		return nil, fmt.Errorf("request: %w", err)
	}
	var found *dispatch.Channel
	for _, c := range v.reg.Channels() {
		for _, p := range c.Params() {
			if _, ok := members[p]; !ok {
				continue
			}
			if found != nil && found != c {
				return nil, fmt.Errorf("request has parameters of both %s and %s: pass --channel", found.ID, c.ID)
			}
			found = c
		}
	}
	if found == nil {
		names := make([]string, 0, len(members))
		for k := range members {
			names = append(names, k)
		}
		slices.Sort(names)
		return nil, fmt.Errorf("request (%s) names no channel's parameters: pass --channel", strings.Join(names, ", "))
	}
	return found, nil
}
