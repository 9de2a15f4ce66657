#!/usr/bin/env bash
# Fetches librdkafka's source with its test suite and builds the suite's `test-runner`, once:
# everything lives in a cache outside the clone ($RILL_RDK_CACHE, default
# $HOME/.cache/rill/librdkafka-<version>-curl), and a second call finds the built runner and
# returns in well under a second. Prints the directory holding `test-runner` (librdkafka's
# `tests/`) as its last line of output; progress goes to stderr.
#
# The source: the npm package node-rdkafka 3.6.1 bundles librdkafka 2.12.0 with its `tests/`
# directory (`npm pack` fetches the tarball; nothing is installed). The build needs a C/C++
# toolchain, zlib, OpenSSL, zstd, lz4, Cyrus SASL, libcurl and rapidjson headers (`.ci/run`
# installs the Debian packages); it builds only librdkafka's two libraries and the test runner,
# with -j2. libcurl is required (--enable-curl): with it and OpenSSL librdkafka has its OIDC token
# client (sasl.oauthbearer.method=oidc), which 0126_oauthbearer_oidc needs. The cache's name says
# so: a runner built without it (the earlier `librdkafka-<version>` cache) is never reused.
set -euo pipefail

npm_package=node-rdkafka@3.6.1
version=2.12.0
cache=${RILL_RDK_CACHE:-$HOME/.cache/rill/librdkafka-$version-curl}
# Part of the stamp: a change here rebuilds.
configure_flags=(--enable-curl)
stamp_text="librdkafka $version from $npm_package; configure ${configure_flags[*]}"
jobs=${RILL_RDK_BUILD_JOBS:-2}
build_timeout=${RILL_RDK_BUILD_TIMEOUT:-1200}

say() { echo "librdkafka-build: $*" >&2; }

src=$cache/src
runner_dir=$src/tests
if [[ -x "$runner_dir/test-runner" && "$(cat "$cache/built.stamp" 2>/dev/null)" == "$stamp_text" ]]; then
    say "using the cached test runner in $runner_dir"
    echo "$runner_dir"
    exit 0
fi

for tool in npm make gcc g++ pkg-config flock timeout; do
    command -v "$tool" >/dev/null || { say "$tool is missing: run .ci/run (it installs the prerequisites)"; exit 1; }
done

mkdir -p "$cache"
# One build at a time per cache; a second caller waits for the first and then finds its result.
exec 9>"$cache/.lock"
flock -w "$build_timeout" 9 || { say "timed out waiting for another build of $cache"; exit 1; }
if [[ -x "$runner_dir/test-runner" && "$(cat "$cache/built.stamp" 2>/dev/null)" == "$stamp_text" ]]; then
    say "another run built the test runner meanwhile"
    echo "$runner_dir"
    exit 0
fi

started=$SECONDS
tarball=$cache/node-rdkafka-3.6.1.tgz
if [[ ! -s "$tarball" ]]; then
    say "fetching $npm_package (npm pack)"
    (cd "$cache" && timeout 300 npm pack --silent "$npm_package" >/dev/null)
fi
[[ -s "$tarball" ]] || { say "npm pack did not produce $tarball"; exit 1; }

# Unpack only the bundled librdkafka into a fresh directory, build there, then move it into place,
# so an interrupted build never looks finished.
rm -rf "$cache/build" "$src" "$cache/built.stamp"
mkdir -p "$cache/build"
tar -xzf "$tarball" -C "$cache/build" --strip-components=3 package/deps/librdkafka
grep -q "RD_KAFKA_VERSION 0x020c00ff" "$cache/build/src/rdkafka.h" \
    || { say "the tarball does not hold librdkafka $version"; exit 1; }

say "configuring librdkafka $version"
(cd "$cache/build" && timeout 300 ./configure "${configure_flags[@]}" >"$cache/configure.log" 2>&1) \
    || { tail -n 30 "$cache/configure.log" >&2; say "configure failed (log: $cache/configure.log)"; exit 1; }
say "building the C and C++ libraries (make -j$jobs, about a minute on 2 cores)"
(cd "$cache/build" && timeout "$build_timeout" make -j"$jobs" libs >"$cache/build.log" 2>&1) \
    || { tail -n 30 "$cache/build.log" >&2; say "build failed (log: $cache/build.log)"; exit 1; }
say "building tests/test-runner"
(cd "$cache/build/tests" && timeout "$build_timeout" make -j"$jobs" test-runner >>"$cache/build.log" 2>&1) \
    || { tail -n 30 "$cache/build.log" >&2; say "build failed (log: $cache/build.log)"; exit 1; }
# Object files, static libraries and debug copies are no longer needed (~110 MB): the runner links
# the shared libraries in src/ and src-cpp/.
find "$cache/build" \( -name '*.o' -o -name '*.a' -o -name '*-dbg.so*' \) -delete
mv "$cache/build" "$src"
echo "$stamp_text" >"$cache/built.stamp"
say "built in $((SECONDS - started)) s"
echo "$runner_dir"
