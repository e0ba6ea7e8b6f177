package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/ordersync/ordersync/pkg/topapi/topsim"
)

// Development credentials of "worker topsim" when neither flags nor
// environment give any: the app key and secret of the TOP documentation's
// signature example, which are public.
const (
	topsimDevAppKey    = "12345678"
	topsimDevAppSecret = "helloworld"
)

// runTopsim runs the TOP gateway simulator ("worker topsim") until ctx ends,
// then shuts the server down gracefully. It prints the listening address to
// stdout, never the app secret. rules knows the channel methods (the
// dispatch registry).
func runTopsim(ctx context.Context, args []string, rules topsim.Rules, stdout io.Writer) error {
	fs := flag.NewFlagSet("topsim", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: worker topsim [flags]\n\nRuns the TOP gateway simulator. Flags:")
		fs.PrintDefaults()
	}
	addr := fs.String("addr", "127.0.0.1:18080", "listen `address`")
	appKey := fs.String("app-key", "", "the app `key` accepted (else $ORDERSYNC_TOP_APP_KEY, else "+topsimDevAppKey+")")
	appSecret := fs.String("app-secret", "", "the app `secret` that signs calls (else $ORDERSYNC_TOP_APP_SECRET,\n"+
		"else the public example secret of the TOP signature docs)")
	sessions := fs.String("sessions", "", "comma-separated valid session `keys`; empty accepts any non-empty session")
	var f topsim.Faults
	fs.DurationVar(&f.Latency, "latency", 0, "fixed latency added to every answer")
	fs.DurationVar(&f.Jitter, "jitter", 0, "random latency in [0, jitter) added to every answer")
	fs.Float64Var(&f.ErrorRate, "error-rate", 0, "share of requests answered with HTTP 503")
	fs.Float64Var(&f.ISPRate, "isp-rate", 0, "share of calls answered with code 15 isp.top-remote-connection-timeout")
	fs.Float64Var(&f.BanRate, "ban-rate", 0, "share of calls that start a code-7 ban of the app key")
	fs.IntVar(&f.BanSeconds, "ban-seconds", topsim.DefaultBanSeconds, "length of a ban in seconds")
	fs.StringVar(&f.BanSubCode, "ban-sub-code", topsim.DefaultBanSubCode, "sub_code of the bans --ban-rate starts; a per-API one\n"+
		"("+topsim.SubCodeAPILimit+", "+topsim.SubCodeAppAPILimit+")\nbans only the method of the call that drew it")
	fs.Float64Var(&f.HangRate, "hang-rate", 0, "share of requests left without an answer (until the client gives up)")
	fs.DurationVar(&f.Hang, "hang", topsim.DefaultHang, "how long a hang lasts at most")
	fs.Float64Var(&f.DropRate, "drop-rate", 0, "share of calls executed (and counted) whose connection is then reset without an answer")
	seed := fs.Int64("seed", 1, "seed of the random source (faults, jitter, request ids)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("topsim: unexpected arguments %q", fs.Args())
	}
	if rules == nil {
		return errors.New("topsim: no channel rules")
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	key := flagOrEnv(set["app-key"], *appKey, "ORDERSYNC_TOP_APP_KEY", topsimDevAppKey)
	secret := flagOrEnv(set["app-secret"], *appSecret, "ORDERSYNC_TOP_APP_SECRET", topsimDevAppSecret)

	var valid []string
	for _, s := range strings.Split(*sessions, ",") {
		if s = strings.TrimSpace(s); s != "" {
			valid = append(valid, s)
		}
	}
	sim, err := topsim.New(topsim.Config{
		AppKey: key, AppSecret: secret, Sessions: valid, Rules: rules, Seed: *seed, Faults: f,
	})
	if err != nil {
		return err
	}
	defer sim.Close()

	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", *addr)
	if err != nil {
		return fmt.Errorf("topsim: %w", err)
	}
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	sessionNote := "any non-empty session accepted"
	if len(valid) > 0 {
		sessionNote = fmt.Sprintf("%d valid sessions", len(valid))
	}
	if secret == topsimDevAppSecret && !set["app-secret"] {
		sessionNote += "; development secret"
	}
	base := "http://" + ln.Addr().String()
	fmt.Fprintf(stdout, "topsim: gateway %s/router/rest (app key %s; %s)\n", base, key, sessionNote)
	fmt.Fprintf(stdout, "topsim: stats GET %s/stats, faults GET|PUT %s/faults, ban POST %s/ban, reset POST %s/reset\n", base, base, base, base)

	select {
	case err := <-served:
		return fmt.Errorf("topsim: serve: %w", err)
	case <-ctx.Done():
	}
	// End hangs and delays first, so in-flight requests finish at once.
	sim.Close()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	if err != nil {
		return fmt.Errorf("topsim: shutdown: %w", err)
	}
	fmt.Fprintln(stdout, "topsim: stopped")
	return nil
}

// flagOrEnv is the flag's value when it was given, else the environment
// variable's when set, else def.
func flagOrEnv(given bool, flagValue, env, def string) string {
	if given {
		return flagValue
	}
	if v, ok := os.LookupEnv(env); ok && v != "" {
		return v
	}
	return def
}
