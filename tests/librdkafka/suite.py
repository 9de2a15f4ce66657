#!/usr/bin/env python3
"""Runs librdkafka's broker tests against a running cluster and compares them with expectations.

Called by tests/librdkafka/run.sh, which builds the runner, starts the cluster and writes the test
configuration. Usage:

    suite.py --runner-dir DIR --conf FILE --expectations FILE --out DIR
             [--jobs N] [--timeout S] [--deadline S] [--tests 0001,0045]

The broker tests are the entries of `tests[]` in the runner's test.c without TEST_F_LOCAL or
TEST_F_MANUAL. Tests are started per test number (`TESTS=0045 test-runner -L -Q`, which runs every
0045_* broker test), each number in its own process with its own timeout, `--jobs` numbers at a
time, so a crash or a hang costs one number, never the run. A number whose every test is listed
`skip` is not started.

The expectations file lists every broker test, one a line:

    NAME  pass
    NAME  pass-sasl                        (passes against the SASL cluster: run with --sasl)
    NAME  pass-oidc                        (passes against the OIDC cluster: run with --oidc)
    NAME  skip  REASON...
    NAME  known-fail  ISSUE  CAUSE...      (ISSUE: the issue number, or `later` if not filed yet)

The run fails when a test listed `pass` does not pass, when a test is missing from the file, or
when the file names a test the suite does not have. A `known-fail` test that passes is reported
(promote it to `pass`) without failing the run. Results go to OUT/results.tsv and each number's
log to OUT/logs/NUMBER.log.

With `--sasl` only the `pass-sasl` tests run (the conf then names a SASL listener and its
credentials), each must pass; with `--oidc` only the `pass-oidc` ones (the conf then sets
sasl.oauthbearer.method=oidc and the environment names the mock's token endpoints); in the other
passes they are not run, as `skip`.
With `--only 0001,0002` only those numbers run, each expected to pass (run.sh's OAUTHBEARER
pass). The numbers an `@full NUMBER...` line of the expectations file names always run without
-Q (tests made only of non-quick sub-tests, which quick mode would pass having run nothing).
With `--full` the runner runs without -Q: quick mode skips every sub-test not marked quick
(SUB_TEST rather than SUB_TEST_QUICK), and a test made only of those, as 0126 is, then passes
having run nothing.
"""

import argparse
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A summary row: `| 0001_multiobj     |     PASSED |   1.196s | reason`.
SUMMARY_ROW = re.compile(r"^\|\s+(\d{4}_\w+)\s+\|\s+(PASSED|FAILED|SKIPPED|RUNNING|NOT STARTED)\s+\|[^|]*\|\s?(.*)$")
# The runner's own end-of-test line, printed even when the summary is not reached.
TEST_DONE = re.compile(r"={5,} Test (\d{4}_\w+) (PASSED|FAILED|SKIPPED) ={5,}")
# A failure, followed by a line with its reason; a failing test usually aborts the runner before
# the summary, so this is where the reason is.
TEST_FAILED = re.compile(r'^### Test "(\d{4}_\w+)[^"]*" failed at ([^ ]+)')
EXPECTATIONS = ("pass", "pass-sasl", "pass-oidc", "skip", "known-fail")
# The passes of their own: --sasl and --oidc run only the tests listed with these kinds.
PASS_KINDS = {"sasl": "pass-sasl", "oidc": "pass-oidc"}

running = {}  # pid -> Popen, the runner processes alive now
running_lock = threading.Lock()
stopping = threading.Event()


def say(message):
    print(f"librdkafka-suite: {message}", file=sys.stderr, flush=True)


def broker_tests(runner_dir):
    """The broker tests of test.c's `tests[]`, in order: (name, number)."""
    with open(os.path.join(runner_dir, "test.c"), encoding="utf-8") as f:
        source = f.read()
    start = source.index("struct test tests[] = {")
    body = source[start : source.index("{NULL}};", start)]
    tests = []
    for name, flags in re.findall(r"_TEST\(\s*(\w+),\s*([^,)]*)", body):
        if "TEST_F_LOCAL" in flags or "TEST_F_MANUAL" in flags:
            continue
        tests.append((name, name.split("_", 1)[0]))
    return tests


def load_full_numbers(path):
    """The test numbers an `@full` line names: they run without quick mode in every pass."""
    numbers = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split("#", 1)[0].split()
            if fields and fields[0] == "@full":
                numbers.update(fields[1:])
    return numbers


def load_expectations(path):
    """name -> (kind, issue or None, text); raises ValueError on a malformed line."""
    expected = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("@full"):
                continue
            fields = line.split()
            name, kind = fields[0], fields[1] if len(fields) > 1 else ""
            where = f"{path}:{number}"
            if kind not in EXPECTATIONS:
                raise ValueError(f"{where}: expectation must be one of {EXPECTATIONS}, not {kind!r}")
            if name in expected:
                raise ValueError(f"{where}: {name} is listed twice")
            issue, text = None, " ".join(fields[2:])
            if kind.startswith("pass") and len(fields) > 2:
                raise ValueError(f"{where}: `{kind}` takes no reason")
            if kind == "skip" and not text:
                raise ValueError(f"{where}: `skip` needs a reason")
            if kind == "known-fail":
                if len(fields) < 4 or not (fields[2].isdigit() or fields[2] == "later"):
                    raise ValueError(
                        f"{where}: `known-fail` needs an issue number (or `later`: not filed yet) and a cause"
                    )
                issue, text = fields[2], " ".join(fields[3:])
            expected[name] = (kind, issue, text)
    return expected


def run_number(number, args, env):
    """Runs one test number; returns {name: (state, seconds or None, reason)} for what it reported."""
    log_path = os.path.join(args.out, "logs", f"{number}.log")
    work = os.path.join(args.out, "work", number)
    os.makedirs(work, exist_ok=True)
    # Tests read ./fixtures/... (0126's JWT assertion template) from their working directory.
    fixtures = os.path.join(work, "fixtures")
    if not os.path.lexists(fixtures):
        os.symlink(os.path.join(os.path.abspath(args.runner_dir), "fixtures"), fixtures)
    full = args.full or number in args.full_numbers
    command = [os.path.join(args.runner_dir, "test-runner"), "-L"] + ([] if full else ["-Q"])
    started = time.monotonic()
    status = None
    with open(log_path, "wb") as log:
        if stopping.is_set():
            return {}, "not started (interrupted)", 0.0
        process = subprocess.Popen(
            command,
            cwd=work,
            env=dict(env, TESTS=number),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a timeout kills it and its children
        )
        with running_lock:
            running[process.pid] = process
        try:
            status = process.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            kill_group(process)
            process.wait()
        finally:
            with running_lock:
                running.pop(process.pid, None)
    seconds = time.monotonic() - started
    results = parse_log(log_path)
    if status is None:
        note = f"timed out after {args.timeout} s"
    elif status < 0:
        note = f"killed by signal {-status}"
    elif status != 0 and not results:
        note = f"exited with status {status}"
    else:
        note = ""
    return results, note, seconds


def parse_log(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = ANSI.sub("", f.read()).splitlines()
    results = {}
    for line in lines:
        done = TEST_DONE.search(line)
        if done:
            results.setdefault(done.group(1), (done.group(2), ""))
    failed = set()
    for i, line in enumerate(lines):
        failure = TEST_FAILED.match(line)
        if failure and failure.group(1) not in failed:
            failed.add(failure.group(1))
            reason = lines[i + 1].strip() if i + 1 < len(lines) else ""
            results[failure.group(1)] = ("FAILED", f"{failure.group(2)} {reason}".strip())
    # The summary, when the runner gets that far, carries the skip or failure reason and wins.
    for line in lines:
        row = SUMMARY_ROW.match(line)
        if row and row.group(2) in ("PASSED", "FAILED", "SKIPPED"):
            results[row.group(1)] = (row.group(2), row.group(3).strip())
    return results


def kill_group(process):
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop_all(signum, _frame):
    stopping.set()
    with running_lock:
        for process in list(running.values()):
            kill_group(process)
    say(f"interrupted (signal {signum}); stopped every test runner")
    sys.exit(128 + signum)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runner-dir", required=True)
    parser.add_argument("--conf", required=True)
    parser.add_argument("--expectations", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--timeout", type=int, default=240, help="seconds per test number")
    parser.add_argument("--deadline", type=int, default=1200, help="seconds for the whole run")
    parser.add_argument("--tests", default="", help="comma-separated test numbers (default: all)")
    parser.add_argument("--sasl", action="store_true", help="run the `pass-sasl` tests only")
    parser.add_argument("--oidc", action="store_true", help="run the `pass-oidc` tests only")
    parser.add_argument(
        "--full",
        action="store_true",
        help="not in quick mode (no -Q): quick mode skips every sub-test not marked quick, "
        "which is all of 0126's",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated test numbers: run these only, each expected to pass whatever the "
        "file says (a pass of chosen tests over another mechanism, e.g. OAUTHBEARER)",
    )
    parser.add_argument("--kafka-version", default="3.8.0")
    parser.add_argument(
        "--durations",
        default="",
        help="JSON file of each number's last duration: read to start the longest first, then updated",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)

    tests = broker_tests(args.runner_dir)
    names = {name for name, _ in tests}
    try:
        expected = load_expectations(args.expectations)
        args.full_numbers = load_full_numbers(args.expectations)
    except ValueError as error:
        say(str(error))
        return 2
    selected = set(filter(None, args.tests.split(",")))
    # This pass's view: with --sasl only `pass-sasl` tests run (as `pass`), with --oidc only
    # `pass-oidc` ones; in the other passes they are `skip`.
    if args.sasl and args.oidc:
        say("--sasl and --oidc are two passes: give one")
        return 2
    only = set(filter(None, args.only.split(",")))
    this_pass = "sasl" if args.sasl else "oidc" if args.oidc else None
    for name, (kind, issue, text) in list(expected.items()):
        if only:
            expected[name] = ("pass", issue, text) if name[:4] in only else ("skip", issue, "not in this pass")
        elif this_pass:
            wanted = PASS_KINDS[this_pass]
            expected[name] = ("pass", issue, text) if kind == wanted else ("skip", issue, f"not a {wanted} test")
        elif kind in PASS_KINDS.values():
            expected[name] = ("skip", issue, f"runs in its own pass ({kind})")
    numbers = []
    for name, number in tests:
        if selected and number not in selected:
            continue
        if expected.get(name, ("unlisted",))[0] != "skip" and number not in numbers:
            numbers.append(number)

    # Longest first (as last measured; unmeasured ones first of all), so that a long test does not
    # start last and run alone.
    durations = read_durations(args.durations)
    numbers.sort(key=lambda n: -durations.get(n, float("inf")))

    os.makedirs(os.path.join(args.out, "logs"), exist_ok=True)
    # Each number runs in OUT/work/NUMBER; tests read ../src/statistics_schema.json from there.
    os.makedirs(os.path.join(args.out, "work"), exist_ok=True)
    src_link = os.path.join(args.out, "work", "src")
    if not os.path.lexists(src_link):
        os.symlink(os.path.join(os.path.dirname(os.path.abspath(args.runner_dir)), "src"), src_link)
    env = dict(os.environ)
    lib = os.path.join(os.path.dirname(args.runner_dir.rstrip("/")), "src")
    env["LD_LIBRARY_PATH"] = ":".join(filter(None, [lib, lib + "-cpp", env.get("LD_LIBRARY_PATH")]))
    env["RDKAFKA_TEST_CONF"] = os.path.abspath(args.conf)
    env["TEST_KAFKA_VERSION"] = args.kafka_version
    # librdkafka's CI mode, always: the same results here and on CI (CI machines set CI, and
    # the runner then triples its timeouts and skips 0055's latency measurement).
    env["CI"] = "true"
    say(f"{len(tests)} broker tests, {len(numbers)} test numbers to run, {args.jobs} at a time, "
        f"{args.timeout} s each at most")

    results = {}  # name -> (state, reason)
    notes = {}  # number -> why its process ended badly
    started = time.monotonic()
    deadline = started + args.deadline
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs))
    futures = {}
    for number in numbers:
        futures[pool.submit(run_number_bounded, number, args, env, deadline)] = number
    done = 0
    for future in concurrent.futures.as_completed(futures):
        number = futures[future]
        reported, note, seconds = future.result()
        results.update(reported)
        if note.startswith("timed out"):
            # A shorter timeout than usual must not make a long number look short.
            durations[number] = max(durations.get(number, 0.0), round(seconds, 1))
        elif not note.startswith("not started"):
            durations[number] = round(seconds, 1)
        if note:
            notes[number] = note
        done += 1
        states = ", ".join(f"{n} {s}" for n, (s, _) in sorted(reported.items())) or "nothing reported"
        say(f"[{done}/{len(numbers)}] {number} in {seconds:.0f} s: {states}{' (' + note + ')' if note else ''}")
    pool.shutdown()
    elapsed = time.monotonic() - started
    write_durations(args.durations, durations)

    # Compare.
    counts = {"pass": 0, "skip": 0, "known-fail": 0}
    unexpected, now_passing, unknown = [], [], []
    rows = []
    for name, number in tests:
        if selected and number not in selected:
            continue
        kind = expected.get(name, (None,))[0]
        if kind == "skip":
            counts["skip"] += 1
            rows.append((name, "not-run", expected[name][2]))
            continue
        state, reason = results.get(name, ("NOT-REPORTED", notes.get(number, "the runner did not report it")))
        rows.append((name, state, reason))
        if kind is None:
            unknown.append((name, state, reason))
        elif kind == "pass":
            if state == "PASSED":
                counts["pass"] += 1
            else:
                unexpected.append((name, state, reason))
        else:
            counts["known-fail"] += 1
            if state == "PASSED":
                now_passing.append((name, expected[name][1]))
    stale = sorted(set(expected) - names)

    with open(os.path.join(args.out, "results.tsv"), "w", encoding="utf-8") as f:
        for name, state, reason in rows:
            f.write(f"{name}\t{state}\t{reason}\n")

    for name, state, reason in unexpected:
        print(f"FAIL {name}: listed pass, got {state}: {reason}")
    for name, state, reason in unknown:
        print(f"UNLISTED {name}: got {state}: {reason} (add it to {args.expectations})")
    for name in stale:
        print(f"STALE {name}: listed in {args.expectations} but not a broker test of this suite")
    for name, issue in now_passing:
        print(f"NOW PASSING {name}: listed known-fail (issue {issue}); promote it to pass")
    failed = len(unexpected) + len(unknown) + len(stale)
    print(
        f"librdkafka-suite: {counts['pass']} passed, {counts['known-fail']} known-fail "
        f"({len(now_passing)} now passing), {counts['skip']} skipped, {failed} unexpected "
        f"({len(unexpected)} listed-pass failures, {len(unknown)} unlisted, {len(stale)} stale) "
        f"in {elapsed:.0f} s"
    )
    return 1 if failed else 0


def read_durations(path):
    try:
        with open(path, encoding="utf-8") as f:
            return {str(k): float(v) for k, v in json.load(f).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def write_durations(path, durations):
    if not path:
        return
    try:
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(durations, f, indent=0, sort_keys=True)
        os.replace(path + ".tmp", path)
    except OSError as error:
        say(f"could not write {path}: {error}")


def run_number_bounded(number, args, env, deadline):
    """run_number, unless the whole run's deadline has passed; the per-number timeout shrinks to fit."""
    left = deadline - time.monotonic()
    if left <= 1:
        return {}, "not started: the whole run's deadline passed", 0.0
    bounded = argparse.Namespace(**vars(args))
    bounded.timeout = int(min(args.timeout, left))
    return run_number(number, bounded, env)


if __name__ == "__main__":
    sys.exit(main())
