#!/usr/bin/env bash
# Builds the openqps container image (Containerfile, FROM scratch) with
# podman, or docker where that is what exists. The context is assembled
# here: the static binary, the host's CA certificates, the passwd/group
# entries of the non-root user and an empty data directory.
#   IMAGE=openqps:dev scripts/image.sh     (ENGINE=docker to choose)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-openqps:dev}"
ENGINE="${ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}"
CA="${CA_CERTIFICATES:-/etc/ssl/certs/ca-certificates.crt}"
[ -r "$CA" ] || { echo "no CA certificates at $CA: install ca-certificates or set CA_CERTIFICATES" >&2; exit 1; }

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
COMMIT="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
PKG=github.com/openqps/openqps/internal/version
CGO_ENABLED=0 GOOS=linux GOARCH="${GOARCH:-$(go env GOARCH)}" go build -trimpath \
  -ldflags "-s -w -X $PKG.version=$VERSION -X $PKG.commit=$COMMIT" -o "$ctx/openqps" ./cmd/openqps
cp Containerfile deploy/container/passwd deploy/container/group "$ctx/"
cp "$CA" "$ctx/ca-certificates.crt"
mkdir "$ctx/data"

format=()
# podman writes OCI images by default, which have no HEALTHCHECK.
[ "$(basename "$ENGINE")" = podman ] && format=(--format docker)
"$ENGINE" build "${format[@]}" -t "$IMAGE" -f "$ctx/Containerfile" "$ctx"
echo "built $IMAGE with $ENGINE"
