package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/segmentio/kafka-go"
)

// ReadConfig configures [ReadPartition].
type ReadConfig struct {
	Brokers   []string           // required
	Transport kafka.RoundTripper // TLS, SASL; default kafka.DefaultTransport
	Topic     string             // required
	Partition int
	// From is the first offset to read; kafka.FirstOffset for the start of the log.
	From int64
	// To is one past the last offset to read; kafka.LastOffset for the high watermark at the
	// start of the read (records written later are not read).
	To int64
	// MaxBytes bounds one fetch response. Default 1 MiB.
	MaxBytes int
}

// ReadPartition calls fn with every committed record of one partition in [From, To), in offset
// order, holding at most one fetch response in memory. Transaction markers and records of aborted
// transactions are skipped, so reading ends at To even when the last offsets are markers; an open
// transaction before To is waited for. It returns fn's first error, or ctx's.
func ReadPartition(ctx context.Context, cfg ReadConfig, fn func(kafka.Message) error) error {
	if len(cfg.Brokers) == 0 || cfg.Topic == "" {
		return errors.New("read partition: brokers and topic are required")
	}
	if cfg.Transport == nil {
		cfg.Transport = kafka.DefaultTransport
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 1 << 20
	}
	addr := kafka.TCP(cfg.Brokers...)
	var req []kafka.OffsetRequest
	if cfg.From < 0 {
		req = append(req, kafka.OffsetRequest{Partition: cfg.Partition, Timestamp: cfg.From})
	}
	if cfg.To < 0 {
		req = append(req, kafka.LastOffsetOf(cfg.Partition))
	}
	if len(req) > 0 {
		offs, err := listOffsets(ctx, cfg.Transport, addr, map[string][]kafka.OffsetRequest{cfg.Topic: req})
		if err != nil {
			return fmt.Errorf("read %s/%d: list offsets: %w", cfg.Topic, cfg.Partition, err)
		}
		po := offs[cfg.Topic][cfg.Partition]
		if po.Error != nil {
			return fmt.Errorf("read %s/%d: list offsets: %w", cfg.Topic, cfg.Partition, po.Error)
		}
		if cfg.From == kafka.FirstOffset {
			cfg.From = po.FirstOffset
		} else if cfg.From == kafka.LastOffset {
			cfg.From = po.LastOffset
		}
		if cfg.To < 0 {
			cfg.To = po.LastOffset
		}
	}
	f := newFetcher(cfg.Transport, addr, cfg.Topic, cfg.Partition, cfg.From)
	for f.next < cfg.To {
		if _, err := f.fetch(ctx, 1, cfg.MaxBytes, 500*time.Millisecond); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read %s/%d@%d: %w", cfg.Topic, cfg.Partition, f.next, err)
		}
		for {
			m, err := f.nextMessage()
			if errors.Is(err, io.EOF) {
				break
			}
			if m.Offset >= cfg.To {
				return nil
			}
			if err := fn(m); err != nil {
				return err
			}
		}
		// A fetch that returned nothing before To waits at the last stable offset (an open
		// transaction ahead), as a consumer would, until it ends or ctx does.
	}
	return nil
}
