#!/usr/bin/env bash
# Builds LazyFS (tests/jepsen/lazyfs/, vendored from github.com/dsrhaslab/lazyfs) for the
# `power` fault family of `cargo xtask jepsen`, and prints the binary's path on stdout.
#
# Idempotent: the binary is cached outside the clone, under a directory named by the hash of the
# vendored sources and this script, so a rerun costs ~0.1 s and a changed source rebuilds.
# Missing build dependencies come from Debian's packages (we run as root, as the harness does).
# Upstream builds with CMake and FetchContent (toml11 and spdlog from GitHub); here both come from
# Debian (the same versions: toml11 3.7.1, spdlog 1.10.0) and one g++ call builds the lot
# (~80 s on 2 idle cores), so the build needs no network beyond the package registry.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/lazyfs"
cache="${RILL_LAZYFS_CACHE:-$HOME/.cache/rill/lazyfs}"

packages=(g++ pkg-config fuse3 libfuse3-dev libspdlog-dev libtoml11-dev)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "lazyfs: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    # `apt-get update` only when the package lists do not know the packages yet.
    if ! apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -qq >&2 && apt-get install -y -qq "${missing[@]}" >&2
    fi
fi

sources=("$src"/lazyfs/src/*.cpp "$src"/lazyfs/include/lazyfs/fusepp/Fuse.cpp)
while IFS= read -r file; do sources+=("$file"); done < <(find "$src/libs/libpcache/src" -name '*.cpp' | sort)
stamp="$( (cat "$0"; find "$src" -type f | sort | xargs cat) | sha256sum | cut -c1-16)"
out="$cache/$stamp"
if [[ -x "$out/lazyfs" ]]; then
    echo "$out/lazyfs"
    exit 0
fi
echo "lazyfs: building into $out (about a minute)" >&2
mkdir -p "$out"
# -w: upstream's own warnings are not ours to fix; a build into a temporary name, then a rename,
# so an interrupted build never leaves a binary that looks finished.
# shellcheck disable=SC2046 # pkg-config's flags are meant to split
g++ -std=c++17 -O2 -w -I"$src/lazyfs/include" -I"$src/libs/libpcache/include" \
    $(pkg-config --cflags spdlog fuse3) "${sources[@]}" -o "$out/lazyfs.tmp" \
    $(pkg-config --libs spdlog fuse3) >&2
mv "$out/lazyfs.tmp" "$out/lazyfs"
# Older builds of other source versions are of no use any more.
find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$stamp" -exec rm -rf {} +
echo "$out/lazyfs"
