// Package promql holds the tests that parse every PromQL expression of the Helm chart's Grafana
// dashboard and PrometheusRule with the Prometheus parser, and keep metrics.txt, the list of
// metric names they use, exact. It is its own Go module so that the worker's module does not
// take on the Prometheus server's dependencies; `make test` runs it.
package promql
