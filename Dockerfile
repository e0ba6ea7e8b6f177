# syntax=docker/dockerfile:1
# The ordersync worker: a static binary on distroless, non-root. Build with `make image` (stamps the
# version from git); `make static` builds and checks the same binary without a container engine. Built
# with -tags nodev: `worker dev` and its embedded broker and Redis are left out.

# The builder runs on the build machine's platform and cross-compiles (no emulation for multi-arch).
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS=linux
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -tags nodev -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/worker ./cmd/worker

# No shell, no package manager; CA certificates and tzdata included; uid/gid 65532 ("nonroot").
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="ordersync" \
      org.opencontainers.image.description="Kafka order events to the Alibaba open platform (TOP), exactly once in effect" \
      org.opencontainers.image.source="https://github.com/ordersync/ordersync" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/worker /worker
USER 65532:65532
# /healthz, /readyz, /metrics (http.addr).
EXPOSE 8080
ENTRYPOINT ["/worker"]
CMD ["run"]
