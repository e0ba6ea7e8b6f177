package consumer

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	fetchapi "github.com/segmentio/kafka-go/protocol/fetch"
)

// fetcher reads one partition with the Kafka Fetch API at the read_committed isolation level:
// records of aborted transactions and transaction control records (commit/abort markers) are
// never handed out, and reading stops at the last stable offset. kafka-go's Reader and Conn
// batches do neither (they return control records as messages), so a topic written by a
// transactional producer would feed markers and aborted orders to the processor.
//
// kafka-go decodes a fetch response into 64 KiB pages per record batch, so a response of many
// small batches takes many times its size. fetch therefore copies the records out at once and
// releases the pages (they go back to kafka-go's pool), and the caller sizes each request to what
// it can take (see fetchBytes). fetcher is not safe for concurrent use.
type fetcher struct {
	rt        kafka.RoundTripper
	addr      net.Addr
	topic     string
	partition int

	next   int64           // offset of the next record to hand out
	queue  []kafka.Message // records of the last response not handed out yet
	head   int
	avg    float64 // moving average of a record's size, for sizing requests
	hwm    int64
	abort  abortedHeap    // aborted transactions not yet reached, by first offset
	abortP map[int64]bool // producers whose current transaction was aborted
}

func newFetcher(rt kafka.RoundTripper, addr net.Addr, topic string, partition int, offset int64) *fetcher {
	return &fetcher{rt: rt, addr: addr, topic: topic, partition: partition, next: offset, hwm: -1, avg: 1024}
}

// fetchBytes is how many bytes to ask for when room more records can be taken now: room times
// the average record size, at least minFetchBytes and at most limit. The broker still returns a
// whole record batch that is larger.
func (f *fetcher) fetchBytes(room, limit int) int {
	return int(min(max(float64(room)*f.avg, minFetchBytes), float64(limit)))
}

const minFetchBytes = 16 << 10

// fetch sends one Fetch request for the partition at the next offset, asking for at most
// maxBytes and waiting at most maxWait for at least minBytes, and queues the committed records
// it returns. It reports the partition's high watermark as the broker gave it.
func (f *fetcher) fetch(ctx context.Context, minBytes, maxBytes int, maxWait time.Duration) (hwm int64, err error) {
	f.drop()
	req := &fetchapi.Request{
		ReplicaID:      -1,
		MaxWaitTime:    int32(maxWait / time.Millisecond),
		MinBytes:       int32(min(minBytes, maxBytes)),
		MaxBytes:       int32(maxBytes),
		IsolationLevel: int8(kafka.ReadCommitted),
		SessionID:      -1,
		SessionEpoch:   -1,
		Topics: []fetchapi.RequestTopic{{
			Topic: f.topic,
			Partitions: []fetchapi.RequestPartition{{
				Partition:          int32(f.partition),
				CurrentLeaderEpoch: -1,
				FetchOffset:        f.next,
				LogStartOffset:     -1,
				PartitionMaxBytes:  int32(maxBytes),
			}},
		}},
	}
	// The broker holds the request up to maxWait; allow for the round trip on top.
	ctx, cancel := context.WithTimeout(ctx, maxWait+10*time.Second)
	defer cancel()
	m, err := f.rt.RoundTrip(ctx, f.addr, req)
	if err != nil {
		return -1, fmt.Errorf("fetch %s/%d@%d: %w", f.topic, f.partition, f.next, err)
	}
	res, ok := m.(*fetchapi.Response)
	if !ok {
		return -1, fmt.Errorf("fetch %s/%d: unexpected response %T", f.topic, f.partition, m)
	}
	if res.ErrorCode != 0 {
		return -1, fmt.Errorf("fetch %s/%d: %w", f.topic, f.partition, kafka.Error(res.ErrorCode))
	}
	if len(res.Topics) == 0 || len(res.Topics[0].Partitions) == 0 {
		return -1, fmt.Errorf("fetch %s/%d: empty response", f.topic, f.partition)
	}
	p := &res.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		return -1, fmt.Errorf("fetch %s/%d@%d: %w", f.topic, f.partition, f.next, kafka.Error(p.ErrorCode))
	}
	f.hwm = p.HighWatermark
	var batches []protocol.RecordReader
	if s, ok := p.RecordSet.Records.(*protocol.RecordStream); ok {
		batches = s.Records
	} else if p.RecordSet.Records != nil {
		batches = []protocol.RecordReader{p.RecordSet.Records}
	}
	f.abort = f.abort[:0]
	for _, t := range p.AbortedTransactions {
		f.abort = append(f.abort, t)
	}
	heap.Init(&f.abort)
	clear(f.abortP)
	if err := f.decode(batches); err != nil {
		return -1, err
	}
	return p.HighWatermark, nil
}

// decode queues the committed records of batches, in offset order, and closes every record so
// that kafka-go's pages go back to its pool. Aborted records and control records only move the
// next offset.
func (f *fetcher) decode(batches []protocol.RecordReader) error {
	var err error
	for _, b := range batches {
		switch b := b.(type) {
		case *protocol.ControlBatch:
			f.control(b)
			continue
		case *protocol.RecordBatch:
			// Aborted transactions that start at or before this batch become current.
			for len(f.abort) > 0 && f.abort[0].FirstOffset <= b.BaseOffset {
				t := heap.Pop(&f.abort).(fetchapi.ResponseTransaction)
				if f.abortP == nil {
					f.abortP = make(map[int64]bool)
				}
				f.abortP[t.ProducerID] = true
			}
			if b.Attributes.Transactional() && f.abortP[b.ProducerID] {
				f.skip(b)
				continue
			}
		}
		for {
			r, rerr := b.ReadRecord()
			if rerr != nil {
				if !errors.Is(rerr, io.EOF) && err == nil {
					err = fmt.Errorf("fetch %s/%d: decode record: %w", f.topic, f.partition, rerr)
				}
				break
			}
			if r.Offset < f.next || err != nil {
				// A batch may start before the requested offset; after an error, only release.
				closeRecord(r)
				continue
			}
			m, merr := f.message(r)
			if merr != nil {
				err = merr
				continue
			}
			f.next = r.Offset + 1
			f.queue = append(f.queue, m)
			f.avg = 0.9*f.avg + 0.1*float64(RecordSize(m))
		}
	}
	if err != nil && len(f.queue) == 0 {
		return err
	}
	return nil // what was decoded before a bad record goes out; the next fetch meets it again
}

// buffered reports whether records of the last response wait to be handed out.
func (f *fetcher) buffered() bool { return f.head < len(f.queue) }

// nextMessage returns the next queued record, or io.EOF when the last response is used up.
func (f *fetcher) nextMessage() (kafka.Message, error) {
	if f.head == len(f.queue) {
		f.drop()
		return kafka.Message{}, io.EOF
	}
	m := f.queue[f.head]
	f.queue[f.head] = kafka.Message{}
	f.head++
	return m, nil
}

// control handles a transaction marker: an abort ends the producer's aborted transaction.
func (f *fetcher) control(b *protocol.ControlBatch) {
	for {
		cr, err := b.ReadControlRecord()
		if err != nil {
			return
		}
		if cr.Offset >= f.next {
			f.next = cr.Offset + 1
		}
		if cr.Type == 0 { // abort
			delete(f.abortP, b.ProducerID)
		}
	}
}

// skip passes over a batch of an aborted transaction.
func (f *fetcher) skip(b *protocol.RecordBatch) {
	for {
		r, err := b.ReadRecord()
		if err != nil {
			return
		}
		if r.Offset >= f.next {
			f.next = r.Offset + 1
		}
		closeRecord(r)
	}
}

func (f *fetcher) message(r *protocol.Record) (kafka.Message, error) {
	defer closeRecord(r)
	key, err := protocol.ReadAll(r.Key)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("fetch %s/%d@%d: read key: %w", f.topic, f.partition, r.Offset, err)
	}
	value, err := protocol.ReadAll(r.Value)
	if err != nil {
		return kafka.Message{}, fmt.Errorf("fetch %s/%d@%d: read value: %w", f.topic, f.partition, r.Offset, err)
	}
	var headers []kafka.Header
	if len(r.Headers) > 0 {
		headers = make([]kafka.Header, len(r.Headers))
		for i, h := range r.Headers {
			headers[i] = kafka.Header(h)
		}
	}
	return kafka.Message{
		Topic:         f.topic,
		Partition:     f.partition,
		Offset:        r.Offset,
		HighWaterMark: f.hwm,
		Key:           key,
		Value:         value,
		Headers:       headers,
		Time:          r.Time,
	}, nil
}

// drop forgets the records not handed out; the next fetch starts at the first of them.
func (f *fetcher) drop() {
	if f.head < len(f.queue) {
		f.next = f.queue[f.head].Offset
	}
	clear(f.queue)
	f.queue, f.head = f.queue[:0], 0
}

// seek moves the next offset, forgetting the records not handed out.
func (f *fetcher) seek(offset int64) {
	f.drop()
	f.next = offset
}

func closeRecord(r *protocol.Record) {
	if r.Key != nil {
		r.Key.Close()
	}
	if r.Value != nil {
		r.Value.Close()
	}
}

// abortedHeap orders aborted transactions by first offset.
type abortedHeap []fetchapi.ResponseTransaction

func (h abortedHeap) Len() int           { return len(h) }
func (h abortedHeap) Less(i, j int) bool { return h[i].FirstOffset < h[j].FirstOffset }
func (h abortedHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *abortedHeap) Push(x any)        { *h = append(*h, x.(fetchapi.ResponseTransaction)) }
func (h *abortedHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// listOffsets asks the partition leaders for offsets (kafka.FirstOffset or kafka.LastOffset per
// request, the latter being the high watermark). kafka-go sends one ListOffsets request per entry,
// concurrently, and merges the answers.
func listOffsets(ctx context.Context, rt kafka.RoundTripper, addr net.Addr, req map[string][]kafka.OffsetRequest) (map[string]map[int]kafka.PartitionOffsets, error) {
	client := &kafka.Client{Addr: addr, Transport: rt, Timeout: 10 * time.Second}
	res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: req})
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[int]kafka.PartitionOffsets, len(res.Topics))
	for topic, ps := range res.Topics {
		m := make(map[int]kafka.PartitionOffsets, len(ps))
		for _, p := range ps {
			m[p.Partition] = p
		}
		out[topic] = m
	}
	return out, nil
}
