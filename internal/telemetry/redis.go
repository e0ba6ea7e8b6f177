package telemetry

import (
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// InstrumentRedis adds tracing and metrics hooks to rdb (a *redis.Client,
// *redis.ClusterClient or *redis.Ring, as returned by redis.NewUniversalClient)
// using github.com/redis/go-redis/extra/redisotel/v9. Call it once, right
// after creating the client and before its first command: for cluster and
// ring clients the hooks are attached to nodes as they are created.
//
// Spans: one CLIENT span per command named after it in lower case ("set",
// "evalsha"), "redis.pipeline <cmds>" per pipeline and "redis.dial" per new
// connection, with db.system=redis, db.connection_string (redis://host:port,
// no credentials), server.address and server.port. The command text and its
// arguments (db.statement) and the caller's code.* location are NOT recorded,
// so no dedupe key, outcome payload or password reaches a span. The commands
// go-redis sends by itself to set up a connection — AUTH, HELLO and CLIENT
// (SETINFO, MAINT_NOTIFICATIONS …), alone or in a pipeline — are not traced:
// they are not the event's work, and servers without the newer CLIENT
// subcommands answer them with errors go-redis ignores, which would mark
// every trace that opens a connection as failed. A failed command records the
// Redis error message (never arguments) as an exception event and the span
// status; redis.Nil is not an error.
//
// Metrics: the redisotel connection-pool set, labelled pool_name = the first
// configured address (low cardinality). In Prometheus: the histograms
// db_client_connections_use_time_milliseconds (per command or pipeline, with
// type, status and error_type labels) and
// db_client_connections_create_time_milliseconds, and the gauges
// db_client_connections_{usage,max,idle_max,idle_min,hits,misses,waits,
// timeouts} and db_client_connections_waits_duration_nanoseconds (redisotel
// keeps the cumulative ones as UpDownCounters by default).
//
// tp and mp nil mean the otel globals (which follow a later Setup).
func InstrumentRedis(rdb redis.UniversalClient, tp trace.TracerProvider, mp metric.MeterProvider) error {
	topts := []redisotel.TracingOption{
		redisotel.WithDBStatement(false),
		redisotel.WithCallerEnabled(false),
		redisotel.WithCommandFilter(connectionCommand),
		redisotel.WithCommandsFilter(func(cmds []redis.Cmder) bool {
			return slices.ContainsFunc(cmds, connectionCommand)
		}),
	}
	if tp != nil {
		topts = append(topts, redisotel.WithTracerProvider(tp))
	}
	if err := redisotel.InstrumentTracing(rdb, topts...); err != nil {
		return fmt.Errorf("instrument redis tracing: %w", err)
	}
	var mopts []redisotel.MetricsOption
	if mp != nil {
		mopts = append(mopts, redisotel.WithMeterProvider(mp))
	}
	if err := redisotel.InstrumentMetrics(rdb, mopts...); err != nil {
		return fmt.Errorf("instrument redis metrics: %w", err)
	}
	return nil
}

// connectionCommand reports whether cmd is one go-redis sends on its own when
// it opens a connection (or one carrying credentials): AUTH, HELLO, CLIENT.
func connectionCommand(cmd redis.Cmder) bool {
	switch strings.ToLower(cmd.Name()) {
	case "auth", "hello", "client":
		return true
	}
	return redisotel.DefaultCommandFilter(cmd)
}
