# Targets a newcomer expects. `make run` and `make test` are the README's
# two commands.
.PHONY: run build test unit lint bench bench-go interop fuzz release image

run:
	go run ./cmd/openqps serve

build:
	go build -o bin/openqps ./cmd/openqps

test:
	scripts/test.sh

unit:
	go test -race ./...

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	go vet ./...
	go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

bench-go:
	go test -run XXX -bench . -benchmem ./...

interop:
	cd interop && npm ci --no-audit --no-fund --silent && node --test

fuzz:
	FUZZTIME=$${FUZZTIME:-10s} scripts/fuzz.sh

bench:
	bench/run.sh

# Cross-compiled binaries for linux/amd64, linux/arm64, windows/amd64 and
# darwin/arm64 in dist/, with SHA256SUMS; VERSION=v1.2.3 make release.
release:
	scripts/release.sh

# The container image (FROM scratch, see Containerfile) with podman, or
# docker where that is what exists; IMAGE=name:tag to name it.
image:
	scripts/image.sh
