#!/usr/bin/env bash
# Usage: scripts/bench.sh [--requests N] [--spawns N] [--json PATH]
#
# The benchmark (docs/performance.md): builds the release `bootstrap` zips for x86_64 and, when
# the arm64 route and qemu exist, arm64 (scripts/package.sh), builds the benchmark program, and
# runs it against a throwaway PostgreSQL and the IAM-auth stand-in. Prints a table and writes it
# as JSON (bench-results.json). Timings depend on the machine; run it on a quiet one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh
case "${1:-}" in -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0;; esac
need cargo "install Rust from https://rustup.rs"
need unzip "Debian: apt-get install unzip"
target_dir=${CARGO_TARGET_DIR:-$root/target}
out="$target_dir/bench"
mkdir -p "$out"

scripts/package.sh --arch x86_64 --out "$out/lambda-x86_64.zip"
rm -rf "$out/x86_64" && mkdir -p "$out/x86_64" && (cd "$out/x86_64" && unzip -q ../lambda-x86_64.zip)
args=(--bootstrap "$out/x86_64/bootstrap" --zip "$out/lambda-x86_64.zip")

qemu=$(command -v qemu-aarch64-static || command -v qemu-aarch64 || true)
if [ -n "$qemu" ] && scripts/package.sh --arch arm64 --out "$out/lambda-arm64.zip"; then
  rm -rf "$out/arm64" && mkdir -p "$out/arm64" && (cd "$out/arm64" && unzip -q ../lambda-arm64.zip)
  args+=(--arm64-bootstrap "$out/arm64/bootstrap" --arm64-zip "$out/lambda-arm64.zip" --qemu "$qemu")
else
  echo "note: no arm64 package or no qemu; measuring x86_64 only" >&2
fi

cargo build -q --release --locked -p bench
"$target_dir/release/bench" "${args[@]}" "$@"
