#!/usr/bin/env bash
# Install the real servers integration tests start on loopback: redis-server (Debian package) and
# FerretDB v1 (MongoDB wire protocol, SQLite backend) built from the Go module proxy.
# Idempotent and quiet when everything is already there. Build output lives outside the repo.
set -euo pipefail

FERRETDB_VERSION="${FERRETDB_VERSION:-v1.24.0}"  # last v1: v2 needs PostgreSQL+DocumentDB, v1 has --handler=sqlite
CACHE="${SRL_CACHE:-$HOME/.cache/srl-test}"
BIN="$CACHE/bin"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# ---- redis-server
if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  echo "install-test-servers: installing redis-server (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi

# ---- iproute2: `ip netns` for the multi-host tests' network namespaces
if ! command -v ip >/dev/null 2>&1; then
  echo "install-test-servers: installing iproute2 (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends iproute2 >/dev/null
fi

# ---- FerretDB
ferretdb_ok() {
  # Not `ferretdb --version | grep -q`: grep -q exits at the first line, ferretdb dies of SIGPIPE
  # writing the next ones, and pipefail turns that into a failed check (and a needless rebuild).
  [ -x "$BIN/ferretdb" ] && "$BIN/ferretdb" --version 2>/dev/null | grep -x "version: $FERRETDB_VERSION" >/dev/null
}
if ! ferretdb_ok; then
  if ! command -v go >/dev/null 2>&1; then
    if [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; else
      echo "install-test-servers: Go is needed to build FerretDB" >&2; exit 1
    fi
  fi
  echo "install-test-servers: building FerretDB $FERRETDB_VERSION into $BIN"
  export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
  # Not `go install mod@version`: it asks the proxy for the module's version list (deprecation
  # check), which the proxy refuses for this module. Download the exact version and build it as the
  # main module instead; that also lets us supply build/version/version.txt, which FerretDB needs.
  dir="$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  if [ -z "$dir" ] || [ ! -d "$dir" ]; then
    echo "install-test-servers: could not download FerretDB $FERRETDB_VERSION" >&2; exit 1
  fi
  src="$(mktemp -d)"
  trap 'rm -rf "$src"' EXIT
  cp -r "$dir/." "$src/"
  chmod -R u+w "$src"
  echo "$FERRETDB_VERSION" > "$src/build/version/version.txt"
  mkdir -p "$BIN"
  (cd "$src" && go build -trimpath -o "$BIN/ferretdb.tmp" ./cmd/ferretdb)
  mv "$BIN/ferretdb.tmp" "$BIN/ferretdb"
  ferretdb_ok || { echo "install-test-servers: built ferretdb does not report $FERRETDB_VERSION" >&2; exit 1; }
fi
