#!/usr/bin/env bash
# Real Kafka clients against a real 3-node rill cluster (the `real-clients` CI step).
#
# Starts `rill cluster up --brokers 3` in a temporary directory on a fixed uncommon base port, then:
#   - kcat -L sees 3 brokers, later the topics the clients made;
#   - confluent-kafka's admin client at once after `up` (admin_checks.py): CreateTopics succeeds
#     without waiting, replication factor 1 below min ISR, validate-only, explicit assignments,
#     refusals with messages;
#   - topic configs and CreatePartitions (config_checks.py): configs validated at CreateTopics,
#     DescribeConfigs' sources, IncrementalAlterConfigs and AlterConfigs, keyless records refused
#     by a compacted topic, a topic grown from 2 to 5 partitions and written to;
#   - confluent-kafka (librdkafka 2.x): idempotent acks=all keyed produce, a group of two members
#     reading everything exactly once, committed offsets, a restarted member resuming;
#   - kafka-python: admin create/delete topic, produce/consume round trip;
#   - kafka-python's admin APIs and old versions (admin_api_checks.py): DeleteRecords, OffsetDelete,
#     DeleteGroups, DescribeCluster; DescribeConfigs v0, OffsetCommit v1, ListOffsets v0 and
#     Metadata v0 from a client configured for old brokers (api_version 0.8.2 to 0.11);
#   - compression: confluent-kafka produces (idempotent, acks=all) and consumes back 2,000 records
#     with each of gzip, snappy, lz4 and zstd; kafka-python with each codec it has modules for;
#   - fetch from followers (follower_fetch_checks.py, the cluster runs `--racks`): confluent-kafka
#     with client.rack RACK<f> reads 200 records in order from follower f, whose metrics count them;
#   - kcat (Debian's librdkafka 2.0.2, an old client): -P / -C -e round trip, a -G group read;
#   - kafkajs 2.2.4 (kafkajs_checks.js, a client family of its own): admin (describeCluster,
#     createTopics, describeConfigs), idempotent produce, gzip/snappy/lz4 produce and consume, a
#     two-member group with commits and a member restarted, alterConfigs, createPartitions,
#     deleteTopicRecords;
#   - fault: SIGKILL the leader of partition 0 under a continuous acks=all producer, restart it;
#     every acknowledged record is read back exactly once;
#   - then (partition_admin_checks.py) confluent-kafka's elect_leaders moves the restarted node's
#     leaderships back (PREFERRED), refusals (ELECTION_NOT_NEEDED, unknown partition); kafka-python's
#     elect_leaders, describe_log_dirs and describe_producers.
#   - client security (security_checks.py) on a second cluster, `cluster up --secure
#     --sasl-plaintext` at base+100: SASL_SSL SCRAM-SHA-256 produce/consume, a wrong password
#     refused, SCRAM users made with AlterUserScramCredentials, SASL_PLAINTEXT PLAIN, ACLs
#     (TOPIC_AUTHORIZATION_FAILED without one), OAUTHBEARER with librdkafka's unsecured JWT
#     (`--oauthbearer unsecured`), every node alive; kcat over SASL_SSL.
# Every check prints PASS/FAIL with figures; the script ends with `real-clients: N passed, N failed`
# and exits non-zero on any failure. The cluster is always stopped on exit.
#
# Needs kcat, a venv with confluent-kafka and kafka-python, and node with kafkajs in RILL_KAFKAJS
# (default $HOME/.cache/rill/kafkajs; `.ci/run` installs all three).
# Environment: RILL_BIN (a prebuilt `rill`, used when it exists: `cargo xtask ci` passes the one its
# `test` step just built; otherwise the debug one is built with cargo), RILL_VENV (default $HOME/.cache/rill/venv),
# RILL_RC_BASE_PORT (default 29300: nodes use base+10N, +1, +2), RILL_RC_KEEP=1 keeps the directory.
# The cluster helpers are shared with tests/librdkafka/run.sh: tests/lib/cluster.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${RILL_VENV:-$HOME/.cache/rill/venv}
python=$venv/bin/python
kafkajs=${RILL_KAFKAJS:-$HOME/.cache/rill/kafkajs}
base_port=${RILL_RC_BASE_PORT:-29300}
# Bounds, in seconds: each client script, each kcat call, the build.
script_timeout=150
kcat_timeout=30
build_timeout=1500

# No __pycache__ in the source tree.
export PYTHONDONTWRITEBYTECODE=1
results=$(mktemp)
started=$(date +%s)

say() { echo "real-clients: $*" >&2; }
pass() { echo "PASS $1: $2" | tee -a "$results"; }
fail() { echo "FAIL $1: $2" | tee -a "$results"; }

for tool in kcat timeout; do
    command -v "$tool" >/dev/null || { say "$tool is missing: run .ci/run (it installs it)"; exit 1; }
done
"$python" -c 'import confluent_kafka, kafka' 2>/dev/null \
    || { say "no venv with confluent-kafka and kafka-python at $venv: run .ci/run"; exit 1; }
(cd "$kafkajs" 2>/dev/null && node -e "require('kafkajs'); require('kafkajs-snappy'); require('kafkajs-lz4')" 2>/dev/null) \
    || { say "no kafkajs with its snappy and lz4 codecs at $kafkajs: run .ci/run"; exit 1; }

# --- the rill binary and the cluster (tests/lib/cluster.sh) ------------------------------------
rill_script_name=real-clients
rill_build_timeout=$build_timeout
export RILL_KEEP_CLUSTER=${RILL_RC_KEEP:-${RILL_KEEP_CLUSTER:-0}}
# shellcheck source=../lib/cluster.sh
source "$root/tests/lib/cluster.sh"
rill_binary "$root" debug

cleanup() {
    local status=$?
    rill_cluster_down "$status"
    # The failed checks again, last: a CI log is often read from its tail, below the nodes' logs.
    if grep -q '^FAIL' "$results" 2>/dev/null; then
        echo "real-clients: the failed checks:" >&2
        grep '^FAIL' "$results" >&2
    fi
    rm -f "$results"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --racks: node N in rack RACK<N> with the rack-aware replica selector (follower_fetch_checks.py);
# clients without a client.rack are served by leaders as before.
rill_cluster_up "$base_port" real-clients --racks
bootstrap=$rill_bootstrap
dir=$rill_cluster_dir

# A client script: its PASS/FAIL lines count; a crash or timeout without a FAIL line is a failure.
run_checks() {
    local name=$1
    shift
    local status=0 failures_before
    failures_before=$(grep -c '^FAIL' "$results" || true)
    (cd "$here" && timeout "$script_timeout" "$@") | tee -a "$results" || status=$?
    if [[ $status -ne 0 && $(grep -c '^FAIL' "$results" || true) -eq $failures_before ]]; then
        fail "$name" "exited with status $status (124 = timed out after $script_timeout s)"
    fi
}
run_python() {
    local name=$1
    shift
    run_checks "$name" "$python" -u "$@"
}

# --- confluent-kafka's admin client first: `rill cluster up` returned only once ready ----------
run_python "admin checks" admin_checks.py "$bootstrap"
run_python "config checks" config_checks.py "$bootstrap"
run_python "admin API checks" admin_api_checks.py "$bootstrap"

# --- kcat -L: three brokers (waits for the controller quorum and every broker's registration) ---
brokers=$(rill_cluster_wait_brokers 3 60 || true)
if [[ "$brokers" == 3 ]]; then
    pass "kcat -L lists the brokers" "3 brokers after $(( $(date +%s) - started )) s"
else
    fail "kcat -L lists the brokers" "saw ${brokers:-no} brokers"
fi

# --- confluent-kafka and kafka-python ------------------------------------------------------------
run_python "confluent-kafka checks" confluent_checks.py "$bootstrap"
run_python "kafka-python checks" kafka_python_checks.py "$bootstrap"
run_python "compression checks" compression_checks.py "$bootstrap"
run_python "follower fetch checks" follower_fetch_checks.py "$bootstrap"

# --- kafkajs (a second client family: its own protocol code, not librdkafka) ---------------------
NODE_PATH="$kafkajs/node_modules" run_checks "kafkajs checks" node kafkajs_checks.js "$bootstrap"

# --- kcat (librdkafka 2.0.2) produce and consume round trip --------------------------------------
kcat_records=200
t0=$(date +%s.%N)
produce_status=0
seq 1 "$kcat_records" | sed -E 's/^(.*)$/k\1:kc-\1/' \
    | timeout "$kcat_timeout" kcat -P -b "$bootstrap" -t rc-kcat -K: -X acks=all -z none 2>&1 \
    || produce_status=$?
consumed=$(timeout "$kcat_timeout" kcat -C -b "$bootstrap" -t rc-kcat -o beginning -e -q -f '%p %o %k %s\n' 2>&1 || true)
t1=$(date +%s.%N)
values=$(awk '{print $4}' <<<"$consumed" | sort -V)
expected=$(seq 1 "$kcat_records" | sed 's/^/kc-/' | sort -V)
keys_ok=$(awk '{ if ("k" substr($4, 4) != $3) bad++ } END { print bad ? "no" : "yes" }' <<<"$consumed")
lines=$(grep -c . <<<"$consumed" || true)
if [[ $produce_status -eq 0 && "$values" == "$expected" && "$keys_ok" == yes ]]; then
    pass "kcat produce/consume round trip" "$kcat_records produced, $lines consumed in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s, keys intact"
else
    fail "kcat produce/consume round trip" "produce status $produce_status, consumed $lines lines (want $kcat_records), keys intact $keys_ok; first lines: $(head -3 <<<"$consumed" | tr '\n' '|')"
fi

# --- kcat (librdkafka 2.0.2) balanced consumer group: reads the same records, commits -------------
t0=$(date +%s.%N)
grouped=$(timeout "$kcat_timeout" kcat -b "$bootstrap" -G rc-kcat-group -o beginning -e -q -f '%p %o %k %s\n' rc-kcat 2>&1 || true)
t1=$(date +%s.%N)
grouped_values=$(awk '{print $4}' <<<"$grouped" | sort -V)
grouped_lines=$(grep -c . <<<"$grouped" || true)
if [[ "$grouped_values" == "$expected" ]]; then
    pass "kcat consumer group (-G) reads everything once" "$grouped_lines records in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
else
    fail "kcat consumer group (-G) reads everything once" "read $grouped_lines lines (want $kcat_records); first lines: $(head -3 <<<"$grouped" | tr '\n' '|')"
fi

# --- kcat -L: the topics the clients made --------------------------------------------------------
listing=$(timeout "$kcat_timeout" kcat -L -b "$bootstrap" 2>&1 || true)
missing_topics=""
for topic in rc-confluent rc-kafka-python rc-kcat; do
    grep -qE "^  topic \"$topic\" with 3 partitions:" <<<"$listing" || missing_topics="$missing_topics $topic"
done
if grep -q 'rc-kafka-python-admin' <<<"$listing"; then missing_topics="$missing_topics (deleted rc-kafka-python-admin still listed)"; fi
topics=$(sed -nE 's/^ ([0-9]+) topics:$/\1/p' <<<"$listing")
if [[ -z "$missing_topics" ]]; then
    pass "kcat -L lists the topics" "$topics topics, each client's with 3 partitions"
else
    fail "kcat -L lists the topics" "missing:$missing_topics"
fi

# --- fault: kill the leader of partition 0 under load --------------------------------------------
run_python "fault checks" fault_checks.py "$bootstrap" "$dir" "$rill"
# --- ElectLeaders moves the killed node's leaderships back; DescribeLogDirs, DescribeProducers ---
run_python "partition admin checks" partition_admin_checks.py "$bootstrap"

# --- client security: a second cluster, `cluster up --secure --sasl-plaintext` -------------------
# SASL_SSL (generated CA, SCRAM-SHA-256 super user) and SASL_PLAINTEXT listeners, the authorizer
# on (security_checks.py); kcat (librdkafka 2.0.2) over SASL_SSL with the printed settings.
rill_cluster_down 0
rill_cluster_up "$((base_port + 100))" real-clients-secure --secure --sasl-plaintext \
    --oauthbearer unsecured
secure_dir=$rill_cluster_dir
run_python "security checks" security_checks.py "$secure_dir"
secure_values=$(seq 1 20 | sed 's/^/sec-/')
secure_status=0
timeout "$kcat_timeout" kcat -F "$secure_dir/client.properties" -P -t rc-kcat-secure -X acks=all \
    <<<"$secure_values" 2>/dev/null || secure_status=$?
secure_read=$(timeout "$kcat_timeout" kcat -F "$secure_dir/client.properties" -C -t rc-kcat-secure \
    -o beginning -e -q 2>/dev/null | sort -V || true)
if [[ $secure_status -eq 0 && "$secure_read" == "$(sort -V <<<"$secure_values")" ]]; then
    pass "kcat over SASL_SSL with SCRAM-SHA-256" "20 produced and read back with kcat -F client.properties"
else
    fail "kcat over SASL_SSL with SCRAM-SHA-256" "produce status $secure_status, read $(grep -c . <<<"$secure_read" || true) of 20"
fi

passed=$(grep -c '^PASS' "$results" || true)
failed=$(grep -c '^FAIL' "$results" || true)
say "finished in $(( $(date +%s) - started )) s"
# The closing line in the form CI log readers count.
echo "real-clients: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
