#!/usr/bin/env bash
# Builds every example component in release mode for wasm32-wasip2 and copies
# the results to wasm/<name>.wasm (or to the directory given with --out).
#
#   ./build.sh                 # rebuild wasm/*.wasm (commit them afterwards)
#   ./build.sh --out DIR       # build into DIR instead (check.sh uses this)
#
# Environment: COMPONENTS_TARGET_DIR (default: target/ beside this script);
# an inherited CARGO_TARGET_DIR is ignored, so these builds never land in the
# root crate's target directory.
#
# The bytes must not depend on where the checkout lives (CI builds in another
# folder) nor on CARGO_HOME or the registry mirror: source paths that end up in the binaries (panic
# locations of dependencies) are remapped to fixed prefixes, and the flags
# come only from this script (RUSTFLAGS from the caller's environment or any
# cargo config are overridden). wasm/TOOLCHAIN records the rustc that built
# the committed binaries; check.sh compares only when the same rustc is here.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
out="$here/wasm"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n "2,17p" "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done

target=wasm32-wasip2
# Every component: crate name = output name (cargo writes `-` as `_`).
components=(greeter pipeline-a pipeline-b pipeline-c blob blob-proxy blob-stream faults kv)

sysroot="$(rustc --print sysroot)"
if [[ ! -d "$sysroot/lib/rustlib/$target" ]]; then
    echo "build.sh: the $target target is not installed (rustup target add $target)" >&2
    exit 1
fi

# Where cargo unpacked the crates.io sources (under CARGO_HOME, in a folder
# named after the registry): found from wit-bindgen's manifest path, so it is
# right whatever CARGO_HOME, HOME or registry mirror is in use.
manifest="$(cargo metadata --format-version 1 --locked --manifest-path "$here/Cargo.toml" \
    | grep -o '"manifest_path":"[^"]*/wit-bindgen-[0-9][^/"]*/Cargo.toml"' | head -n1 \
    | sed 's/^"manifest_path":"//; s/"$//')"
if [[ -z "$manifest" ]]; then
    echo "build.sh: cannot find wit-bindgen's sources with cargo metadata" >&2
    exit 1
fi
registry_src="$(dirname "$(dirname "$manifest")")"
export CARGO_TARGET_DIR="${COMPONENTS_TARGET_DIR:-$here/target}"

# Only these flags: nothing from the caller's environment or cargo configs.
unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS
unset CARGO_BUILD_TARGET CARGO_PROFILE_RELEASE_DEBUG CARGO_PROFILE_RELEASE_OPT_LEVEL
unset CARGO_PROFILE_RELEASE_LTO CARGO_PROFILE_RELEASE_STRIP CARGO_PROFILE_RELEASE_PANIC
unset CARGO_PROFILE_RELEASE_CODEGEN_UNITS CARGO_INCREMENTAL
export RUSTFLAGS="--remap-path-prefix=$here=/wrpc-ring/examples/components --remap-path-prefix=$registry_src=/cargo/registry/src/crates.io"

cd "$here"
cargo build --release --locked --target "$target" --workspace

mkdir -p "$out"
for name in "${components[@]}"; do
    cp "$CARGO_TARGET_DIR/$target/release/${name//-/_}.wasm" "$out/$name.wasm"
done
rustc -V > "$out/TOOLCHAIN"
echo "build.sh: built ${#components[@]} components into $out with $(cat "$out/TOOLCHAIN")"
