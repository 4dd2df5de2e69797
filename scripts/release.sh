#!/usr/bin/env bash
# Cross-compiles openqps for the release platforms into dist/ (static,
# CGO_ENABLED=0, -trimpath), with the version and commit stamped in, and
# writes dist/SHA256SUMS.
#   VERSION=v1.2.3 scripts/release.sh     (default: git describe, else "dev")
set -euo pipefail
cd "$(dirname "$0")/.."

PLATFORMS="${PLATFORMS:-linux/amd64 linux/arm64 windows/amd64 darwin/arm64}"
COMMIT="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then COMMIT="$COMMIT-dirty"; fi
VERSION="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
PKG=github.com/openqps/openqps/internal/version
LDFLAGS="-s -w -X $PKG.version=$VERSION -X $PKG.commit=$COMMIT"

rm -rf dist && mkdir -p dist
for p in $PLATFORMS; do
  os="${p%/*}" arch="${p#*/}"
  out="dist/openqps-$VERSION-$os-$arch"
  [ "$os" = windows ] && out="$out.exe"
  echo "== $p -> $out"
  CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" go build -trimpath -ldflags "$LDFLAGS" -o "$out" ./cmd/openqps
done
(cd dist && sha256sum openqps-* > SHA256SUMS)
cat dist/SHA256SUMS
