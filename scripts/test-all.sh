#!/usr/bin/env bash
# Runs every test of the workspace with the services they need (README's test command).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export CI=${CI:-1}
# shellcheck source=scripts/services.sh
source scripts/services.sh
trap services_stop EXIT
services_start
cargo nextest run --workspace --no-fail-fast "$@"
cargo test --workspace --doc
