#!/usr/bin/env bash
# Prints secondfactor's public API (every feature on), one item per line, from rustdoc's JSON.
# `scripts/public-api.sh > docs/public-api.txt` records it; CI checks that the record is current,
# so that every change to the public surface shows up in review.
set -euo pipefail
cd "$(dirname "$0")/.."
# rustdoc's JSON output is unstable: the stable toolchain takes the flag with RUSTC_BOOTSTRAP.
RUSTC_BOOTSTRAP=1 cargo rustdoc -q -p secondfactor --all-features --locked --lib -- \
  -Z unstable-options --output-format json >&2
python3 scripts/public-api.py "${CARGO_TARGET_DIR:-target}/doc/secondfactor.json"
