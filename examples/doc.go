// Package examples holds examples of publishing order events for ordersync: events/ has one
// event per channel, kcat/publish.sh publishes them with kcat, and producer/ with a Go
// producer; both key each event by its idempotency key and send a W3C traceparent header. The
// tests publish them to a Kafka-protocol broker and check what arrives against the worker's rules.
package examples
