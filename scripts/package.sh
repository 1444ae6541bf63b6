#!/usr/bin/env bash
# Usage: scripts/package.sh [--arch arm64|x86_64] [--out PATH]
#
# Builds the release `bootstrap` for Lambda's provided.al2023 runtime (Linux, glibc 2.34) and
# zips it as `bootstrap` at the zip root, by default into dist/lambda.zip where Terraform reads
# it. arm64 (Graviton) unless --arch x86_64. Picks the first toolchain route that exists:
#   1. cargo lambda build            (cargo-lambda: pip install cargo-lambda)
#   2. cargo zigbuild ... .2.34      (cargo install cargo-zigbuild, plus zig: pip install ziglang)
#   3. cargo build --target ...      (the target's std, e.g. rustup target add, and a cross gcc)
# Fails unless the result is an ELF binary for the requested architecture that needs at most
# GLIBC_2.34. PACKAGE_ROUTE=lambda|zigbuild|cargo forces a route.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
. scripts/lib.sh

arch=arm64
out="$root/dist/lambda.zip"
while [ $# -gt 0 ]; do
  case $1 in
    --arch) arch=${2:?--arch needs a value}; shift 2;;
    --out) out=${2:?--out needs a value}; shift 2;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0;;
    *) die "unknown argument $1 (see --help)";;
  esac
done
case $arch in
  arm64|aarch64) arch=arm64; triple=aarch64-unknown-linux-gnu; elf_machine=183; gnu=aarch64-linux-gnu;;
  x86_64|amd64) arch=x86_64; triple=x86_64-unknown-linux-gnu; elf_machine=62; gnu=x86_64-linux-gnu;;
  *) die "--arch must be arm64 or x86_64, not $arch";;
esac
need cargo "install Rust from https://rustup.rs"
need zip "Debian: apt-get install zip; macOS: it is preinstalled"
target_dir=${CARGO_TARGET_DIR:-$root/target}

has_std() { # has_std RUSTC: whether that compiler has the target's standard library
  local dir; dir=$("$1" --print target-libdir --target "$triple" 2>/dev/null) || return 1
  ls "$dir"/libstd-*.rlib >/dev/null 2>&1
}

route=${PACKAGE_ROUTE:-}
if [ -z "$route" ]; then
  if cargo lambda --version >/dev/null 2>&1; then route=lambda
  elif cargo zigbuild --version >/dev/null 2>&1 && command -v zig >/dev/null 2>&1; then route=zigbuild
  else route=cargo; fi
fi

# A compiler with the target's std: rustup's, or Debian's rustc-web (which ships an arm64 std
# as libstd-rust-web-dev:arm64, for machines that cannot download Rust targets).
rustc_for_target() {
  if has_std rustc; then echo rustc; elif [ -x /usr/bin/rustc ] && has_std /usr/bin/rustc; then echo /usr/bin/rustc; fi
}

echo "packaging bootstrap for $arch ($triple) with route: $route"
case $route in
  lambda)
    flag=--arm64; [ "$arch" = x86_64 ] && flag=--x86-64
    cargo lambda build --release $flag -p lambda --bin bootstrap
    bin="$target_dir/lambda/bootstrap/bootstrap"
    ;;
  zigbuild)
    cargo zigbuild --release -p lambda --bin bootstrap --target "$triple.2.34"
    bin="$target_dir/$triple/release/bootstrap"
    ;;
  cargo)
    compiler=$(rustc_for_target)
    if [ -z "$compiler" ]; then
      cat >&2 <<HINT
error: no toolchain can build for $triple. Install one of:
  - cargo-lambda:   pip install cargo-lambda            (then: scripts/package.sh)
  - cargo-zigbuild: cargo install cargo-zigbuild && pip install ziglang
  - the target:     rustup target add $triple, and a cross linker
                    (Debian: apt-get install gcc-$gnu libc6-dev-${arch/x86_64/amd64}-cross)
  - without rustup targets (Debian 12): dpkg --add-architecture arm64 && apt-get update &&
                    apt-get install rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross
HINT
      exit 1
    fi
    export RUSTC=$compiler
    upper=$(echo "$triple" | tr 'a-z-' 'A-Z_')
    if [ "$(uname -m)" != "${triple%%-*}" ]; then
      need "$gnu-gcc" "a cross linker for $triple: Debian apt-get install gcc-$gnu"
      export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc" "CC_${triple//-/_}=$gnu-gcc" "AR_${triple//-/_}=$gnu-ar"
    fi
    cargo build --release --locked -p lambda --bin bootstrap --target "$triple"
    bin="$target_dir/$triple/release/bootstrap"
    ;;
  *) die "PACKAGE_ROUTE must be lambda, zigbuild or cargo";;
esac

[ -f "$bin" ] || die "the build did not produce $bin"
# The ELF header: magic, 64-bit class, and the machine field (offset 18, little endian).
magic=$(od -An -tx1 -N4 "$bin" | tr -d ' \n')
class=$(od -An -tu1 -j4 -N1 "$bin" | tr -d ' ')
machine=$(od -An -tu2 -j18 -N2 --endian=little "$bin" | tr -d ' ')
[ "$magic" = 7f454c46 ] && [ "$class" = 2 ] || die "$bin is not a 64-bit ELF binary"
[ "$machine" = "$elf_machine" ] || die "$bin is for ELF machine $machine, not $arch ($elf_machine)"

# provided.al2023 has glibc 2.34: the binary must not need a newer one.
objdump=$(command -v "$gnu-objdump" || command -v objdump || true)
if [ -n "$objdump" ]; then
  glibc=$("$objdump" -T "$bin" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1 || true)
  if [ -n "$glibc" ]; then
    newest=$(printf '%s\n%s\n' "${glibc#GLIBC_}" 2.34 | sort -V | tail -n 1)
    [ "$newest" = 2.34 ] || die "$bin needs $glibc, newer than provided.al2023's GLIBC_2.34 (use cargo zigbuild or cargo lambda)"
    echo "glibc requirement: $glibc (provided.al2023 has 2.34)"
  else
    echo "glibc requirement: none (static)"
  fi
else
  echo "warning: no objdump ($gnu-objdump) to check the glibc requirement" >&2
fi

# A reproducible zip: fixed timestamp and mode, no extra attributes, so an unchanged binary
# gives an unchanged source_code_hash and Terraform does not redeploy.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$bin" "$stage/bootstrap"
chmod 755 "$stage/bootstrap"
touch -t 198001010000 "$stage/bootstrap"
mkdir -p "$(dirname "$out")"
rm -f "$out"
(cd "$stage" && zip -q -X -9 "$out" bootstrap)
size() { wc -c < "$1" | tr -d ' '; }
echo "bootstrap: $(size "$bin") bytes; $out: $(size "$out") bytes ($arch)"
