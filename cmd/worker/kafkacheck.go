package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/ordersync/ordersync/internal/config"
)

// refusal is a start-up check that failed for good: retrying cannot help, the configuration or
// the cluster must change.
type refusal struct{ msg string }

func (r *refusal) Error() string { return r.msg }

// kafkaPreflight checks, before the worker takes events, that every topic it reads or writes
// exists and may be used, and that the results and dead-letter topics take records of
// kafka.max_record_bytes. A refusal names the key or topic and the fix; a cluster that cannot be
// reached yet is retried (growing waits, up to 5s) until ctx ends.
func kafkaPreflight(ctx context.Context, dialer *kafka.Dialer, transport kafka.RoundTripper, cfg config.Config, log *slog.Logger) error {
	return retryChecks(ctx, "kafka", log, func(ctx context.Context) (bool, error) {
		err := kafkaPreflightOnce(ctx, dialer, transport, cfg, log)
		var r *refusal
		return errors.As(err, &r), err
	})
}

func kafkaPreflightOnce(ctx context.Context, dialer *kafka.Dialer, transport kafka.RoundTripper, cfg config.Config, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// A connection of our own first: it names a refused TLS or SASL handshake, where the shared
	// transport only sees the connection close.
	var dialErr error
	for _, b := range cfg.Kafka.Brokers {
		var conn *kafka.Conn
		if conn, dialErr = dialer.DialContext(ctx, "tcp", b); dialErr == nil {
			conn.Close()
			break
		}
	}
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var verify *tls.CertificateVerificationError
	switch {
	case dialErr == nil:
	case errors.Is(dialErr, kafka.SASLAuthenticationFailed), errors.Is(dialErr, kafka.UnsupportedSASLMechanism):
		return &refusal{fmt.Sprintf("kafka.sasl: the brokers refuse the credentials of %q (kafka.sasl.username, kafka.sasl.password, kafka.sasl.mechanism): %v",
			cfg.Kafka.SASL.Username, dialErr)}
	case errors.As(dialErr, &unknownCA), errors.As(dialErr, &badHost), errors.As(dialErr, &verify):
		return &refusal{fmt.Sprintf("kafka.tls: the brokers' certificate is not trusted (kafka.tls.ca_file): %v", dialErr)}
	default:
		return fmt.Errorf("connect: %w", dialErr)
	}
	// Every topic with the key that names it.
	keys := map[string]string{cfg.Kafka.ResultsTopic: "kafka.results_topic", cfg.Kafka.DLQTopic: "kafka.dlq_topic"}
	for id, ch := range cfg.Channels {
		if ch.Enabled {
			keys[ch.Topic] = "channels." + id + ".topic"
		}
	}
	topics := make([]string, 0, len(keys))
	for t := range keys {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	// A transport of our own whose metadata lists exactly these topics: one listing all topics (the
	// shared transport's) leaves out those the user may not describe, and an unauthorized topic
	// would look like a missing one.
	if t, ok := transport.(*kafka.Transport); ok {
		own := &kafka.Transport{Dial: t.Dial, DialTimeout: t.DialTimeout, IdleTimeout: t.IdleTimeout, MetadataTTL: t.MetadataTTL,
			MetadataTopics: topics, ClientID: t.ClientID, TLS: t.TLS, SASL: t.SASL, Resolver: t.Resolver, Context: t.Context}
		defer own.CloseIdleConnections()
		transport = own
	}
	client := &kafka.Client{Addr: kafka.TCP(cfg.Kafka.Brokers...), Transport: transport, Timeout: 10 * time.Second}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	for _, t := range md.Topics {
		switch {
		case t.Error == nil:
		case errors.Is(t.Error, kafka.UnknownTopicOrPartition):
			return &refusal{fmt.Sprintf("%s: topic %q does not exist: create it (ordersync creates no topics)", keys[t.Name], t.Name)}
		case errors.Is(t.Error, kafka.TopicAuthorizationFailed):
			return &refusal{fmt.Sprintf("%s: not authorized for topic %q: grant the worker's user DESCRIBE and %s on it",
				keys[t.Name], t.Name, map[bool]string{true: "WRITE", false: "READ"}[t.Name == cfg.Kafka.ResultsTopic || t.Name == cfg.Kafka.DLQTopic])}
		default:
			return fmt.Errorf("metadata of %s: %w", t.Name, t.Error)
		}
	}
	// The broker refuses records over a topic's max.message.bytes: the worker must fit what it
	// writes below that.
	res, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{
		{ResourceType: kafka.ResourceTypeTopic, ResourceName: cfg.Kafka.ResultsTopic, ConfigNames: []string{"max.message.bytes"}},
		{ResourceType: kafka.ResourceTypeTopic, ResourceName: cfg.Kafka.DLQTopic, ConfigNames: []string{"max.message.bytes"}},
	}})
	if err != nil {
		log.Warn("cannot read the results and dead-letter topics' max.message.bytes; kafka.max_record_bytes is not checked", "err", err)
		return nil
	}
	for _, r := range res.Resources {
		if r.Error != nil {
			log.Warn("cannot read a topic's max.message.bytes; kafka.max_record_bytes is not checked for it", "topic", r.ResourceName, "err", r.Error)
			continue
		}
		for _, e := range r.ConfigEntries {
			n, err := strconv.Atoi(e.ConfigValue)
			if e.ConfigName != "max.message.bytes" || err != nil {
				continue
			}
			if n < cfg.Kafka.MaxRecordBytes {
				return &refusal{fmt.Sprintf("kafka.max_record_bytes: %d is more than %s takes (max.message.bytes %d): lower it, or raise the topic's max.message.bytes",
					cfg.Kafka.MaxRecordBytes, r.ResourceName, n)}
			}
		}
	}
	if over := cfg.Worker.MaxMessageBytes + deadLetterOverhead - cfg.Kafka.MaxRecordBytes; over > 0 {
		log.Info("dead letters of the largest events are reduced to fit kafka.max_record_bytes; worker replay re-reads their value from the source",
			"from_value_bytes", cfg.Worker.MaxMessageBytes-over, "max_message_bytes", cfg.Worker.MaxMessageBytes, "max_record_bytes", cfg.Kafka.MaxRecordBytes)
	}
	return nil
}

// deadLetterOverhead is what a dead letter adds to its event: the ordersync-* headers (the error
// cut to 1 KiB, the source coordinates) and the record's framing. Original key and headers come
// on top.
const deadLetterOverhead = 2 << 10
