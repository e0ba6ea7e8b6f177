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
// A fetch response is decoded lazily: a record becomes a kafka.Message only when next is
// called, so a caller that takes an in-flight slot before each next never holds more decoded
// messages than it has slots. fetcher is not safe for concurrent use.
type fetcher struct {
	rt        kafka.RoundTripper
	addr      net.Addr
	topic     string
	partition int

	next int64 // offset of the next record to hand out

	// The response being read.
	batches []protocol.RecordReader // record and control batches, in offset order
	bi      int                     // current batch
	aborted abortedHeap             // aborted transactions not yet reached, by first offset
	abortPs map[int64]bool          // producers whose current transaction was aborted
	hwm     int64
}

func newFetcher(rt kafka.RoundTripper, addr net.Addr, topic string, partition int, offset int64) *fetcher {
	return &fetcher{rt: rt, addr: addr, topic: topic, partition: partition, next: offset, hwm: -1}
}

// errOffsetOutOfRange is returned (wrapped) by fetch when the next offset is not in the log.
var errOffsetOutOfRange = kafka.OffsetOutOfRange

// fetch sends one Fetch request for the partition at the next offset, waiting at most maxWait
// for at least minBytes. It replaces the response being read, if any. It reports the partition's
// high watermark as the broker gave it.
func (f *fetcher) fetch(ctx context.Context, minBytes, maxBytes int, maxWait time.Duration) (hwm int64, err error) {
	f.drop()
	req := &fetchapi.Request{
		ReplicaID:      -1,
		MaxWaitTime:    int32(maxWait / time.Millisecond),
		MinBytes:       int32(minBytes),
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
	if s, ok := p.RecordSet.Records.(*protocol.RecordStream); ok {
		f.batches = s.Records
	} else if p.RecordSet.Records != nil {
		f.batches = []protocol.RecordReader{p.RecordSet.Records}
	}
	f.aborted = f.aborted[:0]
	for _, t := range p.AbortedTransactions {
		f.aborted = append(f.aborted, t)
	}
	heap.Init(&f.aborted)
	clear(f.abortPs)
	return p.HighWatermark, nil
}

// nextMessage returns the next committed record of the current response as a message, or
// io.EOF when the response holds no more.
func (f *fetcher) nextMessage() (kafka.Message, error) {
	for f.bi < len(f.batches) {
		b := f.batches[f.bi]
		switch b := b.(type) {
		case *protocol.ControlBatch:
			f.bi++
			f.control(b)
			continue
		case *protocol.RecordBatch:
			// Aborted transactions that start at or before this batch become current.
			for len(f.aborted) > 0 && f.aborted[0].FirstOffset <= b.BaseOffset {
				t := heap.Pop(&f.aborted).(fetchapi.ResponseTransaction)
				if f.abortPs == nil {
					f.abortPs = make(map[int64]bool)
				}
				f.abortPs[t.ProducerID] = true
			}
			if b.Attributes.Transactional() && f.abortPs[b.ProducerID] {
				f.skip(b)
				f.bi++
				continue
			}
		}
		r, err := b.ReadRecord()
		if errors.Is(err, io.EOF) {
			f.bi++
			continue
		}
		if err != nil {
			f.drop()
			return kafka.Message{}, fmt.Errorf("fetch %s/%d: decode record: %w", f.topic, f.partition, err)
		}
		if r.Offset < f.next {
			// A batch may start before the requested offset.
			closeRecord(r)
			continue
		}
		m, err := f.message(r)
		if err != nil {
			f.drop()
			return kafka.Message{}, err
		}
		f.next = r.Offset + 1
		return m, nil
	}
	f.drop()
	return kafka.Message{}, io.EOF
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
			delete(f.abortPs, b.ProducerID)
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
			headers[i] = kafka.Header{Key: h.Key, Value: h.Value}
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

// drop forgets the response being read; the next fetch starts at the next offset.
func (f *fetcher) drop() {
	f.batches, f.bi = nil, 0
}

// seek moves the next offset, dropping the response being read.
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
