#!/usr/bin/env bash
# Checks that the committed wasm/*.wasm are built from the committed sources:
# rebuilds every component with build.sh into a temporary directory and
# compares the bytes with wasm/. Exit 0 when identical, 1 when not.
#
# Skips (prints why, exits 0) when it cannot decide:
#   - the wasm32-wasip2 target is not installed, or
#   - this rustc is not the one recorded in wasm/TOOLCHAIN (another compiler
#     gives other bytes; rebuild with build.sh and commit to move on).
#
# Environment: COMPONENTS_TARGET_DIR (default: target/ beside this script; a
# warm one makes the check take seconds instead of ~30 s).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
target=wasm32-wasip2

if ! command -v rustc >/dev/null 2>&1 \
    || [[ ! -d "$(rustc --print sysroot)/lib/rustlib/$target" ]]; then
    echo "examples/components/check.sh: skip: the $target target is not installed"
    exit 0
fi
want="$(cat "$here/wasm/TOOLCHAIN")"
have="$(rustc -V)"
if [[ "$have" != "$want" ]]; then
    echo "examples/components/check.sh: skip: wasm/ was built with '$want', this is '$have'"
    exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$here/build.sh" --out "$tmp" >"$tmp.log" 2>&1 || {
    cat "$tmp.log" >&2
    rm -f "$tmp.log"
    echo "examples/components/check.sh: FAIL: build.sh failed" >&2
    exit 1
}
rm -f "$tmp.log"

status=0
for built in "$tmp"/*.wasm; do
    name="$(basename "$built")"
    if [[ ! -f "$here/wasm/$name" ]]; then
        echo "examples/components/check.sh: FAIL: wasm/$name is missing" >&2
        status=1
    elif ! cmp -s "$built" "$here/wasm/$name"; then
        echo "examples/components/check.sh: FAIL: wasm/$name differs from a build of the sources" >&2
        status=1
    fi
done
for committed in "$here"/wasm/*.wasm; do
    name="$(basename "$committed")"
    if [[ ! -f "$tmp/$name" ]]; then
        echo "examples/components/check.sh: FAIL: wasm/$name is not built by build.sh" >&2
        status=1
    fi
done
if [[ $status -ne 0 ]]; then
    echo "examples/components/check.sh: run examples/components/build.sh and commit wasm/" >&2
    exit 1
fi
echo "examples/components/check.sh: ok: $(ls "$tmp"/*.wasm | wc -l) components in wasm/ match a fresh build ($have)"
