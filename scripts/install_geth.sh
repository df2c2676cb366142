#!/usr/bin/env bash
# Builds go-ethereum's geth into the project tree (.tools/bin/geth), for the multi-node Clique network
# the tests and `ledger devnet up --engine clique` start. Cached: does nothing when the pinned version
# is already there, so it is safe to re-run. Nothing is installed system-wide.
#
# Why 1.13.x: go-ethereum 1.14.0 removed Clique sealing and pre-merge networks; 1.13.15 is the last
# release that seals Clique blocks. Why -checklinkname=0: its dependency github.com/fjl/memsize
# links to runtime internals that Go >= 1.23 refuses by default (go-ethereum issue #30100).
set -euo pipefail

GETH_VERSION="${GETH_VERSION:-v1.13.15}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="$ROOT/.tools/bin"
GETH="$BIN_DIR/geth"
STAMP="$BIN_DIR/.geth-version"

if [[ -x "$GETH" && -f "$STAMP" && "$(cat "$STAMP")" == "$GETH_VERSION" ]]; then
    exit 0
fi
command -v go >/dev/null || { echo "install_geth: 'go' is not on PATH (Go >= 1.21 is needed)" >&2; exit 1; }

mkdir -p "$BIN_DIR"
echo "install_geth: building geth $GETH_VERSION into $BIN_DIR (once; later runs reuse it)" >&2
GOBIN="$BIN_DIR" CGO_ENABLED="${CGO_ENABLED:-1}" \
    go install -ldflags=-checklinkname=0 "github.com/ethereum/go-ethereum/cmd/geth@$GETH_VERSION"
# Read the whole output first: `geth version | grep -q` under pipefail fails whenever grep exits at the
# first match and geth then dies writing the rest (SIGPIPE), which happened on a fresh clone.
reported="$("$GETH" version)"
grep -q "^Version: ${GETH_VERSION#v}" <<<"$reported" || {
    echo "install_geth: $GETH does not report version $GETH_VERSION" >&2; exit 1; }
echo "$GETH_VERSION" > "$STAMP"
