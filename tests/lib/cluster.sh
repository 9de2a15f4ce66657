# A local rill cluster on 127.0.0.1 for a test script: sourced by tests/real-clients/run.sh and
# tests/librdkafka/run.sh, so both start, wait for and stop a cluster the same way.
#
#   rill_binary ROOT PROFILE      sets $rill: $RILL_BIN when it is executable, else builds the
#                                 `rill` binary with cargo (PROFILE `debug` or `release`, into
#                                 $CARGO_TARGET_DIR or ROOT/target), bounded by $rill_build_timeout
#   rill_cluster_up BASE NAME [ARG...]
#                                 checks the ports BASE+10N+{0..5} (N = 1..3) are free, makes a
#                                 temporary directory ($rill_cluster_dir, named after NAME) and runs
#                                 `rill cluster up --brokers 3 ARG...` there (it returns once every
#                                 broker is registered and unfenced and a controller is known);
#                                 sets $rill_bootstrap
#   rill_cluster_wait_brokers N T polls `kcat -L` until the cluster lists N brokers (T seconds at
#                                 most); prints the count seen and returns 1 if it never reached N
#   rill_cluster_down [STATUS]    stops the cluster (`rill cluster down`, else SIGKILL to exactly the
#                                 recorded pids); with a non-zero STATUS prints each node log's
#                                 last lines; removes the directory unless $RILL_KEEP_CLUSTER=1
#   rill_cluster_stop DIR [STATUS] the same for the cluster in DIR (a caller running a second
#                                 cluster keeps its $rill_cluster_dir and clears the variable)
#
# The caller installs its own EXIT trap and calls rill_cluster_down from it.

rill_build_timeout=${rill_build_timeout:-1500}
rill_cluster_dir=""
rill_bootstrap=""

rill_say() { echo "${rill_script_name:-cluster}: $*" >&2; }

rill_binary() {
    local root=$1 profile=$2
    if [[ -n "${RILL_BIN:-}" && -x "${RILL_BIN:-}" ]]; then
        rill=$RILL_BIN
        return 0
    fi
    local flags=()
    [[ "$profile" == release ]] && flags=(--release)
    rill_say "building rill ($profile)"
    (cd "$root" && timeout "$rill_build_timeout" "${CARGO:-cargo}" build --quiet "${flags[@]}" -p broker --bin rill)
    rill="${CARGO_TARGET_DIR:-$root/target}/$profile/rill"
    [[ -x "$rill" ]] || { rill_say "no rill binary at $rill"; return 1; }
}

rill_cluster_up() {
    local base_port=$1 name=$2 node offset port
    shift 2
    # +3, +4 and +5: the SASL_SSL, SASL_PLAINTEXT and SSL (mutual TLS) listeners of `--secure
    # --sasl-plaintext`.
    for node in 1 2 3; do
        for offset in 0 1 2 3 4 5; do
            port=$((base_port + 10 * node + offset))
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                rill_say "port $port is in use: choose another base port"
                return 1
            fi
        done
    done
    rill_cluster_dir=$(mktemp -d "${TMPDIR:-/tmp}/rill-$name.XXXXXX")
    rill_bootstrap="127.0.0.1:$((base_port + 10)),127.0.0.1:$((base_port + 20)),127.0.0.1:$((base_port + 30))"
    rill_say "starting 3 nodes in $rill_cluster_dir on $rill_bootstrap"
    timeout 90 "$rill" cluster up --brokers 3 --dir "$rill_cluster_dir" --base-port "$base_port" "$@" >/dev/null
}

rill_cluster_wait_brokers() {
    local want=$1 limit=$2 seen="" deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        seen=$(timeout 10 kcat -L -b "$rill_bootstrap" -m 5 2>/dev/null | sed -nE 's/^ ([0-9]+) brokers:$/\1/p' || true)
        [[ "$seen" == "$want" ]] && break
        sleep 0.5
    done
    echo "${seen:-0}"
    [[ "$seen" == "$want" ]]
}

rill_cluster_down() {
    rill_cluster_stop "$rill_cluster_dir" "${1:-0}"
    rill_cluster_dir=""
}

rill_cluster_stop() {
    local dir=$1 status=${2:-0} pid log
    [[ -n "$dir" && -d "$dir" ]] || return 0
    if [[ -f "$dir/cluster.json" ]]; then
        timeout 30 "$rill" cluster down --dir "$dir" >/dev/null 2>&1 || {
            # `down` failed: stop exactly the recorded processes ourselves.
            for pid in $(grep -oE '^\s+[0-9]+' "$dir/cluster.json"); do
                kill -KILL "$pid" 2>/dev/null || true
            done
        }
    fi
    if [[ $status -ne 0 ]]; then
        for log in "$dir"/node-*.log; do
            [[ -f "$log" ]] && { echo "--- last lines of $log" >&2; tail -n 15 "$log" >&2; }
        done
    fi
    if [[ "${RILL_KEEP_CLUSTER:-0}" == 1 ]]; then
        rill_say "kept $dir"
    else
        rm -rf "$dir"
    fi
}
