#!/usr/bin/env bash
# Publishes one example event per channel (examples/events/<channel>.json) with kcat: each to its
# channel's default topic, keyed by its idempotency key (so one order's events share a partition
# and stay in order), with a W3C traceparent header that the worker's trace continues.
#
#   examples/kcat/publish.sh [BROKER]        BROKER defaults to $KAFKA_BROKER or localhost:9092
#
# Check an event first the way the worker will: go run ./cmd/worker validate examples/events/*.json
set -euo pipefail

broker="${1:-${KAFKA_BROKER:-localhost:9092}}"
events="$(cd "$(dirname "$0")/../events" && pwd)"

# A new W3C traceparent: version 00, a random 16-byte trace id, a random 8-byte span id, sampled.
traceparent() {
  printf '00-%s-%s-01' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" "$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
}

# publish CHANNEL KEY: the whole file is one message (kcat -P reads each file as one value).
publish() {
  local tp
  tp="$(traceparent)"
  kcat -P -b "$broker" -t "orders.$1" -k "$2" -H "traceparent=$tp" "$events/$1.json"
  echo "published $1 to orders.$1 key=$2 traceparent=$tp"
}

# The key is the channel's default idempotency key of each event (README, "Channels"):
publish tmall-aliauto YC_STORE-45678765                 # request.sync_single_order_req.idempotent_id
publish omni-saas REQ-3436967                           # request.request_no
publish icbu-trade example-icbu-trade-0001              # event_id (or the envelope's idempotency_key)
publish mos-haiding refund:20211001231232               # "refund:" + refund_order.out_refund_no
publish diantao-tripartite 543125:true                  # out_order_id + ":" + trade_finished
