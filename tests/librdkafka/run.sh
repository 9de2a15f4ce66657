#!/usr/bin/env bash
# librdkafka's own integration test suite against a local 3-node rill cluster (the
# `librdkafka-suite` CI step), compared with tests/librdkafka/expectations.txt.
#
#   1. build.sh fetches librdkafka 2.12.0 with its tests (npm pack node-rdkafka@3.6.1) and builds
#      its test-runner, cached in $HOME/.cache/rill/librdkafka-2.12.0-curl (a warm cache takes no
#      time);
#   2. the release `rill` is built (or $RILL_BIN used) and `rill cluster up --brokers 3
#      --partitions 4` started on 127.0.0.1 (tests/lib/cluster.sh, shared with
#      tests/real-clients/run.sh; librdkafka's own test clusters use num.partitions=4);
#   3. suite.py runs every broker test in quick mode (`test-runner -L -Q`), one process per test
#      number with its own timeout, several numbers at a time against the one cluster, and compares
#      the outcome with the expectations file: a test listed `pass` that fails, or a test not
#      listed, fails the step; a `known-fail` test that passes is printed, to be promoted.
#   4. the tests listed `pass-sasl` (0135) run the same way against a second cluster,
#      `cluster up --secure --sasl-plaintext --oauthbearer unsecured`, over SASL_PLAINTEXT with
#      SCRAM-SHA-256;
#   5. a few produce/consume tests ($RILL_RDK_OAUTH_TESTS) run again on that cluster with
#      sasl.mechanism=OAUTHBEARER and librdkafka's unsecured JWT (principal admin);
#   6. the tests listed `pass-oidc` (0126) run, in the background from before step 2 on, against
#      a third cluster, `cluster up --secure --sasl-plaintext --oauthbearer file:JWKS`, whose JWKS
#      is that of a mock OIDC provider (oidc_mock.py, on 127.0.0.1 at an ephemeral port)
#      librdkafka gets its tokens from (sasl.oauthbearer.method=oidc), not in quick mode.
# The clusters, the mock and every test runner are stopped on exit, interrupt or timeout.
#
# Needs: npm, a C/C++ toolchain and the -dev packages build.sh names, kcat, python3, and for the
# OIDC pass a venv with PyJWT and cryptography (`.ci/run` installs them). Environment:
#   RILL_BIN               a prebuilt `rill` (default: cargo builds the release one)
#   RILL_RDK_CACHE         where build.sh keeps the source and the built runner (default
#                          $HOME/.cache/rill/librdkafka-2.12.0-curl); RILL_RDK_BUILD_JOBS (default 2)
#   RILL_RDK_BASE_PORT     cluster ports base+10N, +1, +2 (default 29500; the SASL pass's cluster
#                          base+100, the OIDC pass's base+200)
#   RILL_RDK_JOBS          test numbers run at a time (default 4)
#   RILL_RDK_TEST_TIMEOUT  seconds per test number (default 360: 0081_admin takes about 170 s)
#   RILL_RDK_DEADLINE      seconds for all the tests (default 1200)
#   RILL_RDK_TESTS         comma-separated test numbers to run (default: all), e.g. 0001,0045
#   RILL_RDK_FULL          set (to anything): the main pass runs without quick mode (-Q)
#   RILL_RDK_OAUTH_TESTS   the OAUTHBEARER pass's numbers (default 0001,0002,0003,0005,0013;
#                          empty: no such pass)
#   RILL_VENV              the venv with PyJWT and cryptography the OIDC mock runs in (default
#                          $HOME/.cache/rill/venv)
#   RILL_RDK_OUT           where logs and results.tsv go (default: a temporary directory, kept
#                          when the step fails)
#   RILL_KEEP_CLUSTER=1    keeps the cluster's directory (configs, node logs)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
base_port=${RILL_RDK_BASE_PORT:-29500}
started=$SECONDS

say() { echo "librdkafka-suite: $*" >&2; }

for tool in kcat python3 timeout; do
    command -v "$tool" >/dev/null || { say "$tool is missing: run .ci/run (it installs it)"; exit 1; }
done

say "preparing the test runner"
t0=$SECONDS
runner_dir=$(bash "$here/build.sh" | tail -n 1)
[[ -x "$runner_dir/test-runner" ]] || { say "no test-runner in $runner_dir"; exit 1; }
say "test runner ready in $((SECONDS - t0)) s"

rill_script_name=librdkafka-suite
# shellcheck source=../lib/cluster.sh
source "$root/tests/lib/cluster.sh"
t0=$SECONDS
rill_binary "$root" release
say "rill ready in $((SECONDS - t0)) s: $rill"

out=${RILL_RDK_OUT:-}
made_out=0
if [[ -z "$out" ]]; then
    out=$(mktemp -d "${TMPDIR:-/tmp}/rill-librdkafka.XXXXXX")
    made_out=1
fi
mkdir -p "$out"
suite_pid=""
oidc_pid=""
oidc_suite_pid=""
oidc_cluster_dir=""

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n "$suite_pid" ]] && kill -0 "$suite_pid" 2>/dev/null; then
        # suite.py stops its test runners on SIGTERM.
        kill -TERM "$suite_pid" 2>/dev/null || true
        wait "$suite_pid" 2>/dev/null || true
    fi
    if [[ -n "$oidc_suite_pid" ]] && kill -0 "$oidc_suite_pid" 2>/dev/null; then
        kill -TERM "$oidc_suite_pid" 2>/dev/null || true
        wait "$oidc_suite_pid" 2>/dev/null || true
        [[ -f "$out/oidc/suite.log" ]] && cat "$out/oidc/suite.log" >&2
    fi
    if [[ -n "$oidc_pid" ]] && kill -0 "$oidc_pid" 2>/dev/null; then
        kill -TERM "$oidc_pid" 2>/dev/null || true
        wait "$oidc_pid" 2>/dev/null || true
    fi
    rill_cluster_stop "$oidc_cluster_dir" "$status"
    rill_cluster_down "$status"
    if [[ $status -ne 0 || $made_out -eq 0 ]]; then
        say "logs and results in $out"
    else
        rm -rf "$out"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The OIDC pass, in the background beside the others: the tests listed `pass-oidc`
# (0126_oauthbearer_oidc) with librdkafka's own OIDC token client (sasl.oauthbearer.method=oidc)
# against oidc_mock.py, a mock identity provider serving what trivup's OauthbearerOIDCApp serves
# librdkafka's CI: token endpoints (valid, bad signature, expired; client_credentials, jwt-bearer
# assertions, Azure IMDS queries) and client keys, which reach the test through the environment,
# and the JWKS file a cluster of its own validates tokens with (`--oauthbearer file:JWKS`). The
# tokens' principal, User:subject, has no ACL: `--authorizer` leaves what no ACL names open, as
# trivup's Kafka (no authorizer) is. The client settings are trivup's. 0126 runs without quick
# mode (--full: quick mode skips all its sub-tests) for about 95 s, mostly waiting (a 5 s sleep
# in each produce/consume case, 5-10 s polls in the failing ones): beside the main pass it costs
# the step only its cluster's start.
oidc_tests=$(awk '!/^#/ && $2 == "pass-oidc" { print substr($1, 1, 4) }' "$here/expectations.txt" | sort -u | paste -sd, -)
if [[ -n "$oidc_tests" && -n "${RILL_RDK_TESTS:-}" ]]; then
    oidc_tests=$(python3 -c 'import sys; a = set(sys.argv[1].split(",")); print(",".join(n for n in sys.argv[2].split(",") if n in a))' \
        "$RILL_RDK_TESTS" "$oidc_tests")
fi
if [[ -n "$oidc_tests" ]]; then
    t0=$SECONDS
    venv=${RILL_VENV:-$HOME/.cache/rill/venv}
    "$venv/bin/python" -c 'import jwt, cryptography' 2>/dev/null \
        || { say "no venv with PyJWT and cryptography at $venv (the OIDC mock needs them): run .ci/run"; exit 1; }
    mock_dir=$out/oidc-mock
    rm -rf "$mock_dir"
    "$venv/bin/python" -u "$here/oidc_mock.py" --dir "$mock_dir" --parent $$ 2>"$out/oidc-mock.log" &
    oidc_pid=$!
    for _ in $(seq 150); do
        [[ -f "$mock_dir/oidc.env" ]] && break
        kill -0 "$oidc_pid" 2>/dev/null || break
        sleep 0.1
    done
    [[ -f "$mock_dir/oidc.env" ]] || { cat "$out/oidc-mock.log" >&2; say "the OIDC mock did not start"; exit 1; }
    oidc_base=$((base_port + 200))
    rill_cluster_up "$oidc_base" librdkafka-oidc --partitions 4 --secure --sasl-plaintext \
        --oauthbearer "file:$mock_dir/jwks.json" --authorizer
    # The main cluster is started next with the same helpers: this one is stopped by its
    # directory.
    oidc_cluster_dir=$rill_cluster_dir
    rill_cluster_dir=""
    valid_url=$(sed -n 's/^VALID_OIDC_URL=//p' "$mock_dir/oidc.env")
    cat >"$out/test-oidc.conf" <<EOF
bootstrap.servers=127.0.0.1:$((oidc_base + 14)),127.0.0.1:$((oidc_base + 24)),127.0.0.1:$((oidc_base + 34))
broker.address.family=v4
security.protocol=SASL_PLAINTEXT
sasl.mechanism=OAUTHBEARER
sasl.oauthbearer.method=oidc
sasl.oauthbearer.token.endpoint.url=$valid_url
sasl.oauthbearer.client.id=123
sasl.oauthbearer.client.secret=abc
sasl.oauthbearer.scope=test
sasl.oauthbearer.extensions=ExtensionworkloadIdentity=develC348S,Extensioncluster=lkc123
test.topic.random=true
EOF
    say "OIDC mock and cluster ready in $((SECONDS - t0)) s; its pass runs in the background"
    mkdir -p "$out/oidc"
    # Its output goes to a file, printed when it is over (not interleaved with the main pass's).
    (
        set -a
        # shellcheck source=/dev/null
        source "$mock_dir/oidc.env"
        set +a
        exec python3 -u "$here/suite.py" \
            --oidc --full \
            --runner-dir "$runner_dir" \
            --conf "$out/test-oidc.conf" \
            --expectations "$here/expectations.txt" \
            --out "$out/oidc" \
            --jobs "${RILL_RDK_JOBS:-4}" \
            --timeout "${RILL_RDK_TEST_TIMEOUT:-360}" \
            --deadline "${RILL_RDK_DEADLINE:-1200}" \
            --tests "$oidc_tests"
    ) >"$out/oidc/suite.log" 2>&1 &
    oidc_suite_pid=$!
fi

# librdkafka's test clusters (trivup) run with num.partitions=4: 0029_assign_offset produces to
# partition 3 of an auto-created topic; and with broker.rack RACK<N> and the rack-aware replica
# selector: 0101_fetch_from_follower reads the racks with DescribeConfigs and fetches from one.
# The ACL authorizer is on, open where no ACL exists (allow.everyone.if.no.acl.found), as
# Kafka with an authorizer: 0081_admin creates, describes and deletes ACLs and checks the
# authorized operations they leave.
rill_cluster_up "$base_port" librdkafka --partitions 4 --racks --authorizer
brokers=$(rill_cluster_wait_brokers 3 60) || { say "the cluster listed $brokers brokers, not 3"; exit 1; }
say "3 brokers listed after $((SECONDS - started)) s"

# The runner reads test.conf: librdkafka properties plus the suite's own `test.*` ones.
cat >"$out/test.conf" <<EOF
bootstrap.servers=$rill_bootstrap
broker.address.family=v4
# Random topic names: numbers run in parallel against one cluster never share a topic.
test.topic.random=true
EOF

# In the background so that a signal reaches the trap at once; `wait` returns the exit status.
python3 -u "$here/suite.py" \
    ${RILL_RDK_FULL:+--full} \
    --runner-dir "$runner_dir" \
    --conf "$out/test.conf" \
    --expectations "$here/expectations.txt" \
    --out "$out" \
    --jobs "${RILL_RDK_JOBS:-4}" \
    --timeout "${RILL_RDK_TEST_TIMEOUT:-360}" \
    --deadline "${RILL_RDK_DEADLINE:-1200}" \
    --tests "${RILL_RDK_TESTS:-}" \
    --durations "$(cd "$runner_dir/../.." && pwd)/durations.json" &
suite_pid=$!
status=0
wait "$suite_pid" || status=$?
suite_pid=""

# The SASL pass: the tests listed `pass-sasl` (0135_sasl_credentials) against a second cluster,
# `cluster up --secure --sasl-plaintext`, over its SASL_PLAINTEXT listeners (base+10N+4) with
# SCRAM-SHA-256 as the generated super user. Seconds: the cluster starts in about 2 s, 0135 takes 1 s.
rill_cluster_down 0
rill_cluster_up "$((base_port + 100))" librdkafka-sasl --partitions 4 --secure --sasl-plaintext \
    --oauthbearer unsecured
sasl_password=$(sed -n 's/^sasl.password=//p' "$rill_cluster_dir/client.properties")
sasl_base=$((base_port + 100))
cat >"$out/test-sasl.conf" <<EOF
bootstrap.servers=127.0.0.1:$((sasl_base + 14)),127.0.0.1:$((sasl_base + 24)),127.0.0.1:$((sasl_base + 34))
broker.address.family=v4
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-256
sasl.username=admin
sasl.password=$sasl_password
test.topic.random=true
EOF
mkdir -p "$out/sasl"
python3 -u "$here/suite.py" \
    --sasl \
    --runner-dir "$runner_dir" \
    --conf "$out/test-sasl.conf" \
    --expectations "$here/expectations.txt" \
    --out "$out/sasl" \
    --jobs "${RILL_RDK_JOBS:-4}" \
    --timeout "${RILL_RDK_TEST_TIMEOUT:-360}" \
    --deadline "${RILL_RDK_DEADLINE:-1200}" \
    --tests "${RILL_RDK_TESTS:-}" \
    --durations "$(cd "$runner_dir/../.." && pwd)/durations.json" &
suite_pid=$!
sasl_status=0
wait "$suite_pid" || sasl_status=$?
suite_pid=""
[[ $status -ne 0 ]] || status=$sasl_status

# The OAUTHBEARER pass: a few produce/consume tests ($RILL_RDK_OAUTH_TESTS) on the same cluster,
# whose SASL listeners also offer OAUTHBEARER with Kafka's unsecured validator (`--oauthbearer
# unsecured`): librdkafka makes its own unsigned token for principal admin (a super user).
oauth_tests=${RILL_RDK_OAUTH_TESTS-0001,0002,0003,0005,0013}
if [[ -n "$oauth_tests" && -n "${RILL_RDK_TESTS:-}" ]]; then
    # Only the chosen numbers that are also in the OAUTHBEARER list.
    oauth_tests=$(python3 -c 'import sys; a = set(sys.argv[1].split(",")); print(",".join(n for n in sys.argv[2].split(",") if n in a))' \
        "$RILL_RDK_TESTS" "$oauth_tests")
fi
if [[ -n "$oauth_tests" ]]; then
    cat >"$out/test-oauth.conf" <<EOF
bootstrap.servers=127.0.0.1:$((sasl_base + 14)),127.0.0.1:$((sasl_base + 24)),127.0.0.1:$((sasl_base + 34))
broker.address.family=v4
security.protocol=SASL_PLAINTEXT
sasl.mechanism=OAUTHBEARER
enable.sasl.oauthbearer.unsecure.jwt=true
sasl.oauthbearer.config=principal=admin
test.topic.random=true
EOF
    mkdir -p "$out/oauth"
    python3 -u "$here/suite.py" \
        --only "$oauth_tests" \
        --runner-dir "$runner_dir" \
        --conf "$out/test-oauth.conf" \
        --expectations "$here/expectations.txt" \
        --out "$out/oauth" \
        --jobs "${RILL_RDK_JOBS:-4}" \
        --timeout "${RILL_RDK_TEST_TIMEOUT:-360}" \
        --deadline "${RILL_RDK_DEADLINE:-1200}" &
    suite_pid=$!
    oauth_status=0
    wait "$suite_pid" || oauth_status=$?
    suite_pid=""
    [[ $status -ne 0 ]] || status=$oauth_status
fi

if [[ -n "$oidc_suite_pid" ]]; then
    t0=$SECONDS
    oidc_status=0
    wait "$oidc_suite_pid" || oidc_status=$?
    oidc_suite_pid=""
    say "the OIDC pass (waited $((SECONDS - t0)) s for it after the others):"
    cat "$out/oidc/suite.log" >&2
    rill_cluster_stop "$oidc_cluster_dir" "$oidc_status"
    oidc_cluster_dir=""
    [[ $status -ne 0 ]] || status=$oidc_status
fi
say "finished in $((SECONDS - started)) s"
exit "$status"
