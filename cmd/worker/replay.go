package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersync/ordersync/internal/config"
	"github.com/ordersync/ordersync/pkg/consumer"
	"github.com/ordersync/ordersync/pkg/dispatch"
)

// Bounds of one publish (one WriteMessages call): replay holds at most this much besides the
// fetch response it is reading and one re-read original.
const (
	replayBatchRecords = 500
	// replayBatchBytes is the most one batch takes (less when kafka.max_record_bytes is lower):
	// the broker's default message.max.bytes, which any source topic accepts as a batch.
	replayBatchBytes = 1 << 20
	// replayReadTimeout bounds the re-read of one reduced dead letter's original.
	replayReadTimeout = time.Minute
)

// replayOptions are the flags of `worker replay`.
type replayOptions struct {
	dryRun          bool
	sourceTopic     string // --channel's topic; "" for every source
	eventID         string
	errorContains   string
	includeRejected bool
}

// runReplay is `worker replay`: it re-publishes the dead letters in the DLQ topic to their source
// topics (header ordersync-source-topic), with their original key, value and headers, minus the
// ordersync-* headers the DLQ added. It streams: each partition is read up to its high watermark
// taken when replay starts, and the selected dead letters are published in bounded batches as
// they are read. Replaying is safe to repeat: an event that completed in the meantime comes back
// as a duplicate outcome, never a second order.
func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML); ORDERSYNC_* variables override it")
	var opts replayOptions
	fs.BoolVar(&opts.dryRun, "dry-run", false, "print what would be replayed, publish nothing")
	channel := fs.String("channel", "", "only dead letters from this channel's topic")
	fs.StringVar(&opts.eventID, "event-id", "", "only the dead letter of this event_id")
	fs.StringVar(&opts.errorContains, "error-contains", "", "only dead letters whose ordersync-error contains this text")
	fs.BoolVar(&opts.includeRejected, "include-rejected", false, "also re-send dead letters that are still invalid (the worker rejects them again)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, err := loadValidConfig(*path, environ, false)
	if err != nil {
		return err
	}
	if *channel != "" {
		ch, ok := cfg.Channels[*channel]
		if !ok {
			return fmt.Errorf("--channel: unknown channel %q (known: %s)", *channel, strings.Join(dispatch.ChannelIDs(), ", "))
		}
		opts.sourceTopic = ch.Topic
	}
	r, err := newReplay(cfg, opts, stdout, stderr)
	if err != nil {
		return err
	}
	defer r.close()
	return r.run(ctx)
}

// messageWriter is what replay publishes with: a *kafka.Writer.
type messageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// replay is one run of `worker replay`. It is not safe for concurrent use.
type replay struct {
	cfg       config.Config
	opts      replayOptions
	registry  *dispatch.Registry
	transport *kafka.Transport
	client    *kafka.Client
	stdout    io.Writer
	stderr    io.Writer

	// batched writes batches of at most maxBatch records and batchBytes; single writes a record
	// larger than that, alone.
	batched, single messageWriter
	closers         []io.Closer
	batchBytes      int
	maxBatch        int

	batch     []kafka.Message
	lines     []string // printed once the batch is acknowledged
	batchSize int      // bytes in batch

	read, selected, replayed, invalid, unreadable int
}

func newReplay(cfg config.Config, opts replayOptions, stdout, stderr io.Writer) (*replay, error) {
	registry, err := dispatch.NewRegistry(cfg.ChannelTopics())
	if err != nil {
		return nil, err
	}
	_, transport, err := kafkaClients(cfg.Kafka)
	if err != nil {
		return nil, err
	}
	addr := kafka.TCP(cfg.Kafka.Brokers...)
	// A record larger than a batch is written alone: its source topic took it once.
	batchBytes := min(cfg.Kafka.MaxRecordBytes, replayBatchBytes)
	batched := &kafka.Writer{Addr: addr, Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond, BatchSize: replayBatchRecords, BatchBytes: int64(batchBytes),
		WriteTimeout: 30 * time.Second, Transport: transport}
	single := &kafka.Writer{Addr: addr, Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, BatchSize: 1, BatchBytes: math.MaxInt32,
		WriteTimeout: time.Minute, Transport: transport}
	return &replay{
		cfg: cfg, opts: opts, registry: registry, transport: transport, stdout: stdout, stderr: stderr,
		client:  &kafka.Client{Addr: addr, Transport: transport, Timeout: 10 * time.Second},
		batched: batched, single: single, closers: []io.Closer{batched, single}, batchBytes: batchBytes, maxBatch: replayBatchRecords,
	}, nil
}

func (r *replay) close() {
	for _, c := range r.closers {
		_ = c.Close() // nothing is pending: every write was waited for
	}
	r.transport.CloseIdleConnections()
}

// run replays every partition of the DLQ topic up to the high watermarks taken at its start, so
// that dead letters written meanwhile (its own replays failing again among them) wait for the
// next run. It fails when a selected dead letter could not be replayed.
func (r *replay) run(ctx context.Context) error {
	topic := r.cfg.Kafka.DLQTopic
	ends, err := r.highWatermarks(ctx, topic)
	if err != nil {
		return fmt.Errorf("read %s: %w", topic, err)
	}
	parts := make([]int, 0, len(ends))
	for p := range ends {
		parts = append(parts, p)
	}
	sort.Ints(parts)
	for _, p := range parts {
		if ends[p] <= 0 {
			continue
		}
		err := consumer.ReadPartition(ctx, consumer.ReadConfig{
			Brokers: r.cfg.Kafka.Brokers, Transport: r.transport, Topic: topic, Partition: p,
			From: kafka.FirstOffset, To: ends[p], MaxBytes: r.cfg.Kafka.MaxBytes,
		}, func(m kafka.Message) error { return r.handle(ctx, m) })
		if err != nil {
			return fmt.Errorf("read %s: %w (%d dead letter(s) replayed before)", topic, err, r.replayed)
		}
	}
	if err := r.flush(ctx); err != nil {
		return err
	}

	if r.opts.dryRun {
		fmt.Fprintf(r.stdout, "dry run, nothing published: %d of %d dead letter(s) selected, %d to replay, %d skipped still invalid, %d skipped unreadable source\n",
			r.selected, r.read, r.replayed, r.invalid, r.unreadable)
	} else {
		fmt.Fprintf(r.stdout, "replayed %d of %d dead letter(s): %d selected, %d replayed, %d skipped still invalid, %d skipped unreadable source\n",
			r.replayed, r.read, r.selected, r.replayed, r.invalid, r.unreadable)
	}
	if r.unreadable > 0 {
		return fmt.Errorf("%d selected dead letter(s) not replayed: their original could not be read from the source", r.unreadable)
	}
	return nil
}

// highWatermarks returns the high watermark of every partition of topic.
func (r *replay) highWatermarks(ctx context.Context, topic string) (map[int]int64, error) {
	md, err := r.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if len(md.Topics) != 1 {
		return nil, fmt.Errorf("metadata: %d topics in the answer, want 1", len(md.Topics))
	}
	if md.Topics[0].Error != nil {
		return nil, md.Topics[0].Error
	}
	req := make([]kafka.OffsetRequest, 0, len(md.Topics[0].Partitions))
	for _, p := range md.Topics[0].Partitions {
		req = append(req, kafka.LastOffsetOf(p.ID))
	}
	res, err := r.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	ends := make(map[int]int64, len(req))
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("list offsets of partition %d: %w", p.Partition, p.Error)
		}
		ends[p.Partition] = p.LastOffset
	}
	if len(ends) != len(req) {
		return nil, fmt.Errorf("list offsets: %d partitions answered, want %d", len(ends), len(req))
	}
	return ends, nil
}

// handle selects, checks and publishes (or, in a dry run, lists) one dead letter.
func (r *replay) handle(ctx context.Context, m kafka.Message) error {
	r.read++
	src := consumer.Header(m, consumer.HeaderSourceTopic)
	switch {
	case src == "":
		fmt.Fprintf(r.stderr, "skip %s/%d@%d: no %s header\n", m.Topic, m.Partition, m.Offset, consumer.HeaderSourceTopic)
		return nil
	case r.opts.sourceTopic != "" && src != r.opts.sourceTopic:
		return nil
	case r.opts.errorContains != "" && !strings.Contains(consumer.Header(m, consumer.HeaderError), r.opts.errorContains):
		return nil
	}
	rec := kafka.Message{Topic: src, Key: m.Key, Value: m.Value, Headers: withoutOrdersync(m.Headers)}
	id := eventIDOf(m.Value)
	reduced := consumer.Header(m, consumer.HeaderValueTruncated) == "true"
	if r.opts.eventID != "" && id != r.opts.eventID && (!reduced || id != "") {
		// A reduced value may have lost its event_id with its end; only then is the source read.
		return nil
	}
	where := fmt.Sprintf("%s/%d@%d → %s key=%q", m.Topic, m.Partition, m.Offset, src, m.Key)
	note := ""
	if reduced {
		orig, why, err := r.original(ctx, m, src)
		if err != nil {
			return err
		}
		if why != "" {
			r.selected++
			r.unreadable++
			fmt.Fprintf(r.stdout, "skip %s event_id=%q: %s\n", where, id, why)
			return nil
		}
		rec = orig
		id = eventIDOf(orig.Value)
		if r.opts.eventID != "" && id != r.opts.eventID {
			return nil
		}
		note = fmt.Sprintf(" value re-read from %s/%s@%s (%d bytes)", src,
			consumer.Header(m, consumer.HeaderSourcePartition), consumer.Header(m, consumer.HeaderSourceOffset), len(orig.Value))
	}
	r.selected++
	if why := r.stillInvalid(src, rec.Value); why != "" {
		if !r.opts.includeRejected {
			r.invalid++
			fmt.Fprintf(r.stdout, "skip %s event_id=%q: still invalid: %s\n", where, id, why)
			return nil
		}
		note += " still invalid (--include-rejected): " + why
	}
	verb := "replay"
	if r.opts.dryRun {
		verb = "would replay"
	}
	line := fmt.Sprintf("%s %s event_id=%q error=%q%s\n", verb, where, id, consumer.Header(m, consumer.HeaderError), note)
	if r.opts.dryRun {
		r.replayed++
		fmt.Fprint(r.stdout, line)
		return nil
	}
	return r.publish(ctx, rec, line)
}

// stillInvalid returns why the worker would reject value from topic before calling the platform
// (its size, syntax and the channel's API page), with the JSON path, or "".
func (r *replay) stillInvalid(topic string, value []byte) string {
	ch, ok := r.registry.ByTopic(topic)
	if !ok {
		return "no enabled channel consumes topic " + strconv.Quote(topic)
	}
	env, err := dispatch.DecodeEnvelope(value, r.cfg.Worker.MaxMessageBytes)
	if err == nil {
		_, err = ch.Prepare(env)
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// original re-reads the record a reduced dead letter stands for from its source partition and
// offset. why says, when it cannot, what the source no longer holds; err is only ctx's.
func (r *replay) original(ctx context.Context, d kafka.Message, src string) (orig kafka.Message, why string, err error) {
	part, perr := strconv.Atoi(consumer.Header(d, consumer.HeaderSourcePartition))
	off, oerr := strconv.ParseInt(consumer.Header(d, consumer.HeaderSourceOffset), 10, 64)
	if perr != nil || oerr != nil || part < 0 || off < 0 {
		return kafka.Message{}, fmt.Sprintf("reduced, and no valid %s/%s header to re-read it from", consumer.HeaderSourcePartition, consumer.HeaderSourceOffset), nil
	}
	at := fmt.Sprintf("source %s/%d@%d", src, part, off)
	gone := at + " no longer holds the original (retention)"
	res, err := r.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		src: {kafka.FirstOffsetOf(part), kafka.LastOffsetOf(part)},
	}})
	if err != nil {
		if ctx.Err() != nil {
			return kafka.Message{}, "", ctx.Err()
		}
		return kafka.Message{}, fmt.Sprintf("%s: list offsets: %v", at, err), nil
	}
	ps := res.Topics[src]
	if len(ps) != 1 || ps[0].Error != nil {
		var perr error = errors.New("no answer for the partition")
		if len(ps) > 0 {
			perr = ps[0].Error
		}
		return kafka.Message{}, fmt.Sprintf("%s: list offsets: %v", at, perr), nil
	}
	switch first, end := ps[0].FirstOffset, ps[0].LastOffset; {
	case off < first:
		return kafka.Message{}, gone, nil
	case off >= end:
		return kafka.Message{}, fmt.Sprintf("%s does not hold the original: the partition ends at %d (was the topic recreated?)", at, end), nil
	}
	size, serr := strconv.Atoi(consumer.Header(d, consumer.HeaderValueBytes))
	rctx, cancel := context.WithTimeout(ctx, replayReadTimeout)
	defer cancel()
	found := false
	err = consumer.ReadPartition(rctx, consumer.ReadConfig{
		Brokers: r.cfg.Kafka.Brokers, Transport: r.transport, Topic: src, Partition: part,
		From: off, To: off + 1, MaxBytes: max(size, r.cfg.Kafka.MaxBytes),
	}, func(m kafka.Message) error {
		if m.Offset == off {
			orig, found = m, true
		}
		return nil
	})
	switch {
	case ctx.Err() != nil:
		return kafka.Message{}, "", ctx.Err()
	case errors.Is(err, kafka.OffsetOutOfRange):
		return kafka.Message{}, gone, nil // deleted since the offsets were listed
	case err != nil:
		return kafka.Message{}, fmt.Sprintf("%s: %v", at, err), nil
	case !found:
		// A marker or an aborted record: what the worker read there is gone (compaction).
		return kafka.Message{}, at + " no longer holds the original (no record at that offset)", nil
	case serr == nil && len(orig.Value) != size:
		return kafka.Message{}, fmt.Sprintf("%s holds a different record (%d bytes, the dead letter says %d): was the topic recreated?", at, len(orig.Value), size), nil
	}
	return kafka.Message{Topic: src, Key: orig.Key, Value: orig.Value, Headers: withoutOrdersync(orig.Headers)}, "", nil
}

// publish adds rec to the batch and writes the batch once it holds maxBatch records or would
// pass batchBytes; a record larger than a batch is written alone. line is printed once rec is
// acknowledged.
func (r *replay) publish(ctx context.Context, rec kafka.Message, line string) error {
	size := consumer.RecordSize(rec)
	if size > r.batchBytes || (len(r.batch) > 0 && r.batchSize+size > r.batchBytes) {
		if err := r.flush(ctx); err != nil {
			return err
		}
	}
	if size > r.batchBytes {
		if err := r.single.WriteMessages(ctx, rec); err != nil {
			return fmt.Errorf("publish to %s (%d bytes): %w (%d dead letter(s) replayed before)", rec.Topic, size, err, r.replayed)
		}
		r.replayed++
		fmt.Fprint(r.stdout, line)
		return nil
	}
	r.batch = append(r.batch, rec)
	r.lines = append(r.lines, line)
	r.batchSize += size
	if len(r.batch) >= r.maxBatch {
		return r.flush(ctx)
	}
	return nil
}

// flush writes the batch and prints its lines. replayed counts acknowledged records only.
func (r *replay) flush(ctx context.Context) error {
	if len(r.batch) == 0 {
		return nil
	}
	if err := r.batched.WriteMessages(ctx, r.batch...); err != nil {
		return fmt.Errorf("publish %d record(s): %w (%d dead letter(s) replayed before)", len(r.batch), err, r.replayed)
	}
	r.replayed += len(r.batch)
	for _, l := range r.lines {
		fmt.Fprint(r.stdout, l)
	}
	clear(r.batch)
	clear(r.lines)
	r.batch, r.lines, r.batchSize = r.batch[:0], r.lines[:0], 0
	return nil
}

// withoutOrdersync returns the headers but the ordersync-* ones a dead letter carries.
func withoutOrdersync(hs []kafka.Header) []kafka.Header {
	var out []kafka.Header
	for _, h := range hs {
		if !strings.HasPrefix(h.Key, "ordersync-") {
			out = append(out, h)
		}
	}
	return out
}

// eventIDOf returns the top-level event_id of a JSON value, or "". It reads the value as a stream,
// so it also finds the event_id at the start of a value cut short (a reduced dead letter).
func eventIDOf(value []byte) string {
	dec := json.NewDecoder(bytes.NewReader(value))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return ""
		}
		if k == "event_id" {
			v, err := dec.Token()
			if s, ok := v.(string); ok && err == nil {
				return s
			}
			return ""
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return ""
		}
	}
	return ""
}
