// Package chart tests the Helm chart (charts/ordersync) and the container image definition
// (Dockerfile) against the worker they deploy. It has no code of its own, only tests:
//
//   - `helm lint --strict` and `helm template` for every value set in charts/ordersync/ci/, each
//     rendered manifest decoded strictly into its Kubernetes API type (a misspelled field fails);
//   - labels, selectors, pod security, probes and ports, credentials only in the Secret, the OTel
//     environment, autoscaling targets, the ServiceMonitor and the KEDA ScaledObject;
//   - the pod's configuration checked the way the pod runs it: the worker binary, built from the parent
//     module once per test run, runs `worker run --config ... --check` with the pod's ORDERSYNC_*
//     environment and its mounted files;
//   - bad values rejected by the schema and the templates, checksums that roll pods, yamllint, a closed
//     values schema, and the Dockerfile.
//
// It is a Go module of its own so that k8s.io/api and its dependencies stay out of the worker's go.mod.
// Run it with `make test` from the repository root, or `go test ./...` here; it needs helm and yamllint
// (.ci/deps installs both).
package chart
