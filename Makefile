# ordersync — build, test and lint targets. `make test` is what CI runs.
GO        ?= go
GOBIN     := $(shell $(GO) env GOPATH)/bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# A count, not a duration: with Go 1.26 a -fuzztime duration can fail a target with a bare
# "context deadline exceeded" when it expires mid-execution (golang/go#75804, fixed in Go 1.27).
FUZZTIME  ?= 50000x

IMAGE     ?= ghcr.io/ordersync/ordersync

# The Go modules: the worker; the chart tests (their own module, so that k8s.io/api and friends stay
# out of the worker's go.mod); the Prometheus parser's checks of the chart's PromQL (their own module for
# the same reason). lint and tidy-check cover all three; test runs all three.
CHART_TESTS  := test/chart
PROMQL_TESTS := tools/promql
MODULES      := . $(CHART_TESTS) $(PROMQL_TESTS)

.PHONY: all deps build test test-short fuzz bench bench-short bench-micro lint tidy-check image static chaos

export PATH := $(PATH):$(GOBIN)

all: lint test

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/worker ./cmd/worker

## deps: install what the tests need when it is missing (redis-server, kcat, yamllint, Node.js and npm, staticcheck, helm, the AsyncAPI parser).
deps:
	@.ci/deps

## test: every test of the three modules, with the race detector, plus a short fuzz run per target.
test: deps
	$(GO) test -race -count=1 -timeout 15m ./...
	cd $(CHART_TESTS) && $(GO) test -race -count=1 -timeout 10m ./...
	cd $(PROMQL_TESTS) && $(GO) test -count=1 ./...
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory static

test-short:
	$(GO) test -short -count=1 ./...

## fuzz: run each fuzz target for $(FUZZTIME) executions; any panic fails the build.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

## chaos: the bounded soak of issue 11 (cmd/worker TestChaos): events of every kind into three worker
## processes while they are killed and restarted, Redis restarts and the simulator goes through a ban,
## an outage and a burst of 5xx; prints one summary line. CHAOS_DURATION=45s in CI. Without the race
## detector by default (its shadow memory would blur the memory bound): CHAOS_FLAGS=-race adds it.
## CHAOS_SEED=<n> replays a run's schedule.
CHAOS_DURATION ?= 2m
CHAOS_FLAGS    ?=
chaos: deps
	CHAOS_DURATION=$(CHAOS_DURATION) $(GO) test $(CHAOS_FLAGS) -count=1 -v -run '^TestChaos$$' -timeout 20m ./cmd/worker/

## bench: the worker benchmark (cmd/worker BenchmarkWorker): the worker as a process of its own draining
## backlogs at 0/20/100 ms API latency × max_in_flight 1/64/default, a pass-through ceiling and a 500k
## backlog; writes BENCHMARKS.md. About 15 minutes on 2 cores; BENCH_SCALE=0.2 for a quick look.
bench: deps
	BENCH_REPORT=$(CURDIR)/BENCHMARKS.md $(GO) test -run '^$$' -bench '^BenchmarkWorker$$' -benchtime 1x -count=1 -timeout 90m ./cmd/worker/

## bench-short: BenchmarkWorker on tiny backlogs, writing no report: CI checks that it runs.
bench-short: deps
	BENCH_SCALE=0.02 BENCH_BACKLOG=2000 $(GO) test -run '^$$' -bench '^BenchmarkWorker$$' -benchtime 1x -count=1 -timeout 15m ./cmd/worker/

## bench-micro: every other benchmark once, allocations reported.
bench-micro:
	$(GO) test -run '^$$' -bench . -skip '^BenchmarkWorker$$' -benchmem -count=1 -timeout 30m ./...

## lint: gofmt, then vet and staticcheck in each module (and vet of the production build, -tags nodev),
## then tidy-check.
lint: deps
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do \
	  echo "vet, staticcheck: $$m"; \
	  (cd $$m && $(GO) vet ./... && $(GOBIN)/staticcheck ./...); \
	done
	$(GO) vet -tags nodev ./cmd/worker
	$(MAKE) --no-print-directory tidy-check

## tidy-check: fails when `go mod tidy` would change go.mod or go.sum of any module (prints the diff).
tidy-check:
	@set -e; for m in $(MODULES); do \
	  echo "go mod tidy -diff: $$m"; \
	  (cd $$m && $(GO) mod tidy -diff); \
	done

## image: the container image (Dockerfile), tagged with VERSION without its leading "v".
image:
	docker build --build-arg VERSION=$(VERSION) -t $(IMAGE):$(patsubst v%,%,$(VERSION)) .

## static: the image's binary without a container engine: CGO off, trimmed, version-stamped, without
## `worker dev` (-tags nodev: no embedded broker or Redis); fails unless it is statically linked, carries
## neither kfake nor miniredis, and `worker version` runs. Prints its size.
static:
	CGO_ENABLED=0 $(GO) build -tags nodev -trimpath -ldflags '$(LDFLAGS)' -o bin/worker ./cmd/worker
	@$(GO) version -m bin/worker | grep -q 'CGO_ENABLED=0' || { echo "bin/worker: not built with CGO_ENABLED=0"; exit 1; }
	@if ldd bin/worker >/dev/null 2>&1; then echo "bin/worker is dynamically linked:"; ldd bin/worker; exit 1; fi
	@if $(GO) version -m bin/worker | grep -E 'kfake|miniredis'; then echo "bin/worker carries the development broker or Redis"; exit 1; fi
	bin/worker version
	@ls -l bin/worker | awk '{printf "bin/worker: %.1f MiB\n", $$5/1048576}'
