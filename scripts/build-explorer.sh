#!/usr/bin/env bash
# Builds the web explorer into plain static files: ledger-core's verification compiled to
# WebAssembly (crate wasm/, wasm-bindgen --target web) in OUT/pkg/, and the pages of explorer/src/
# copied beside it. Any static host can serve OUT; log-server embeds explorer/dist at /explorer/.
#
#   bash scripts/build-explorer.sh [OUT]        (default OUT: explorer/dist)
#
# Needs the wasm32-unknown-unknown target and wasm-bindgen-cli of the version wasm/Cargo.toml pins
# (.ci/run installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-explorer/dist}"
want="$(sed -n 's/^wasm-bindgen = "=\(.*\)"$/\1/p' wasm/Cargo.toml)"
bindgen="$(command -v wasm-bindgen || echo "$HOME/.cargo/bin/wasm-bindgen")"
if ! "$bindgen" --version 2>/dev/null | grep -qx "wasm-bindgen $want"; then
  echo "build-explorer: wasm-bindgen $want is needed: cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi
target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --locked -p ledger-wasm --target wasm32-unknown-unknown --profile wasm
rm -rf "$out.tmp"
mkdir -p "$out.tmp/pkg"
"$bindgen" --target web --no-typescript --out-dir "$out.tmp/pkg" \
  "$target_dir/wasm32-unknown-unknown/wasm/ledger_wasm.wasm"
cp -R explorer/src/. "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "build-explorer: $(du -sh "$out" | cut -f1) in $out ($(du -h "$out/pkg/ledger_wasm_bg.wasm" | cut -f1) of WebAssembly)"
