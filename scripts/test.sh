#!/usr/bin/env bash
# The whole test suite, as the README and CI run it: vet, unit and
# end-to-end tests under the race detector, the interoperability suite
# with real npm clients, and a short run of every fuzz target.
# Tests that need Redis start their own redis-server on a free port, and
# those of Windows authentication their own MIT KDC; this script only
# makes sure the binaries are installed.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { # need BINARY DEBIAN-PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing $2 (needed by the tests)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2") >/dev/null
  else
    echo "the tests need $1: install it with 'sudo apt-get install $2' and run again" >&2
    exit 1
  fi
}
# want is need for what only some tests use: when it cannot be
# installed, those tests skip and say why, and the rest still run.
want() { # want BINARY DEBIAN-PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing $2 (needed by some tests)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2") >/dev/null && return 0
  fi
  echo "$1 is not installed and could not be installed: the tests that need it will skip"
}
need redis-server redis-server
# The container test (e2e/container_test.go) builds and runs the image
# with podman; runc, since crun fails on machines like CI's.
want podman podman
want runc runc
# The SAML tests run SimpleSAMLphp as their identity provider; the
# package does not pull the PHP extensions it needs, so one check for all.
if ! { [ -d /usr/share/simplesamlphp/www ] && php -m 2>/dev/null | grep -qix dom && php -m | grep -qix mbstring; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing simplesamlphp (needed by the SAML tests)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq simplesamlphp php-cli php-xml php-mbstring php-curl) >/dev/null ||
      echo "SimpleSAMLphp could not be installed: the SAML tests will skip"
  else
    echo "SimpleSAMLphp is not installed ('apt-get install simplesamlphp php-cli php-xml php-mbstring php-curl'): the SAML tests will skip"
  fi
fi
# Windows authentication tests start their own MIT KDC (internal/kdctest).
need krb5kdc krb5-kdc
need kadmin.local krb5-admin-server
need kinit krb5-user

echo "== go vet"
go vet ./...
# Every release platform must keep building: vet type-checks the whole
# tree for the other GOOS values too (build tags, syscall differences),
# without the cost of linking binaries.
for goos in windows darwin; do
  echo "== GOOS=$goos go vet"
  GOOS=$goos go vet ./...
done
echo "== go test -race"
go test -race -count=1 -timeout 25m ./...
echo "== go test -race, through net/http.Transport with raw sockets off"
# The same forwarding tests and attack tables through the other upstream
# transport (transport.upstream: net/http) and without raw socket calls
# (transport.raw_sockets: off): both must refuse and forward alike.
OPENQPS_TEST_UPSTREAM=net/http OPENQPS_TEST_RAW_SOCKETS=off go test -race -count=1 -timeout 10m \
  -run 'TestForward|TestBackend|TestWriteHead|TestRefused|TestStalled|TestWebsocket|TestAttack|TestSeed' ./internal/proxy ./e2e
if [ -f interop/package.json ]; then
  need node nodejs
  need chromium chromium # the console's browser test (interop/console.test.js)
  echo "== interop (real npm clients)"
  make -s interop
fi
if [ -x scripts/fuzz.sh ]; then
  echo "== fuzz (short)"
  FUZZTIME="${FUZZTIME:-10s}" scripts/fuzz.sh
fi
