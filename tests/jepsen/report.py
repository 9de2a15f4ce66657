"""Judging and reporting a real-process run, in the simulator's terms.

- `analyse`: the checker's classes against what the row forbids (the rule of
  `ClusterDraw::forbidden_in` in sim/src/cluster/mod.rs), never-read values, operation counts, and
  the time the cluster took to serve every partition again after each heal.
- `cell`: the seeds of one invocation aggregated into one cell, in the words and format of
  `cargo sim matrix` (sim/src/matrix.rs `cell_text`), so a real cell and a simulated one can be
  set side by side (docs/reality-check.md).
- `write_html`: one seed's timeline: fault episodes as bands over the operations per second and the
  offsets acknowledged per partition, then the faults with their recovery times and the anomalies.
"""

import html
import json

ALL_CLASSES = ["lost-write", "duplicate", "inconsistent-offsets", "unseen", "poll-skip",
               "int-poll-skip", "nonmonotonic-poll", "int-nonmonotonic-poll", "nonmonotonic-send",
               "int-nonmonotonic-send", "int-send-skip", "G0", "G1a", "G1c"]
LOST_CLASSES = ["lost-write", "inconsistent-offsets", "unseen"]
DUPLICATE_SHADOWS = ["poll-skip", "int-poll-skip", "nonmonotonic-poll", "int-nonmonotonic-poll",
                     "nonmonotonic-send", "int-nonmonotonic-send", "int-send-skip"]
HEALS = ("heal", "heal-all")


def strong(row):
    return row["acks"] == -1 and row["min_isr"] >= 2 and not row["unclean"]


def forbidden(row):
    """The classes the row forbids (the simulator's ClusterDraw::forbidden)."""
    if not strong(row):
        return []  # WEAK_FORBIDDEN: once replicas may diverge, only liveness and crashes count
    if row["idempotence"]:
        return list(ALL_CLASSES)
    return [c for c in ALL_CLASSES if c != "duplicate"]


def forbidden_in(row, seen):
    rule = forbidden(row)
    duplicated = "duplicate" in seen and "duplicate" not in rule
    return [c for c in seen if c in rule and not (duplicated and c in DUPLICATE_SHADOWS)]


def row_label(row):
    acks = "all" if row["acks"] == -1 else str(row["acks"])
    return (f"acks={acks}, min ISR {row['min_isr']}, {'unclean' if row['unclean'] else 'clean'}, "
            f"{'idempotent' if row['idempotence'] else 'not idempotent'}")


def load(history_path):
    with open(history_path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def analyse(history_path, row, outcome):
    events = load(history_path)
    checked = outcome["check"]
    # Classes the checker reports as allowed under subscribe (rebalances move consumers) are
    # excused like the simulator excuses nothing: they are listed, never forbidden.
    seen = [c for c in ALL_CLASSES if c in checked["anomalies"]]
    excused = [c for c in seen if checked["anomalies"][c]["allowed"]]
    bad = [c for c in forbidden_in(row, seen) if c not in excused]
    sent, read, acked = set(), set(), set()
    counts = {}
    invokes = {}
    for e in events:
        if e["process"] == "nemesis":
            continue
        if e["type"] == "invoke":
            invokes[e["process"]] = e
            continue
        name = f"{e['f']} {e['type']}"
        counts[name] = counts.get(name, 0) + 1
        if e["f"] == "send":
            for mop in e["value"] or []:
                sent.add(mop[2][1])
                if e["type"] == "ok":
                    acked.add(mop[2][1])
        elif e["f"] == "poll" and e["type"] == "ok":
            for pairs in e["value"][0][1].values():
                read.update(v for _, v in pairs)
    unread = len(sent - read)
    return {
        "seen": seen,
        "excused": excused,
        "forbidden": bad,
        "counts": counts,
        "operations": sum(counts.values()),
        "sends": len(sent),
        "acked": len(acked),
        "unread": unread,
        "recoveries": recoveries(events),
    }


def recoveries(events):
    """Per heal: seconds until every partition acknowledged a send invoked after the heal (None
    when some partition did not before the next fault or the end)."""
    out = []
    nemesis = [e for e in events if e["process"] == "nemesis"]
    keys = sorted({m[1] for e in events if e["process"] != "nemesis" and e["f"] == "send"
                   for m in (e["value"] or [])})
    for i, heal in enumerate(nemesis):
        if heal["f"] not in HEALS:
            continue
        end = next((e["time"] for e in nemesis[i + 1:] if e["f"] not in HEALS), None)
        invoked = {}
        first_ok = {}
        for e in events:
            if e["process"] == "nemesis" or e["f"] != "send" or e["time"] < heal["time"]:
                continue
            if end is not None and e["time"] > end:
                break
            if e["type"] == "invoke":
                invoked[e["process"]] = e["time"]
            elif e["type"] == "ok" and e["process"] in invoked:
                for mop in e["value"]:
                    first_ok.setdefault(mop[1], e["time"])
        kind = heal["value"].get("kind", "all") if isinstance(heal["value"], dict) else "all"
        if keys and all(k in first_ok for k in keys):
            seconds = (max(first_ok[k] for k in keys) - heal["time"]) / 1e9
            out.append({"heal": kind, "at_s": round(heal["time"] / 1e9, 2),
                        "seconds": round(seconds, 2)})
        else:
            out.append({"heal": kind, "at_s": round(heal["time"] / 1e9, 2), "seconds": None})
    return out


def seed_summary(o):
    rec = [r["seconds"] for r in o["recoveries"] if r["seconds"] is not None]
    slow = sum(1 for r in o["recoveries"] if r["seconds"] is None)
    parts = [
        f"seed {o['seed']}: {o['operations']} operations ({o['acked']} sends acknowledged of "
        f"{o['sends']}), faults {json.dumps(o.get('faults', {}), sort_keys=True)}",
        f"  anomalies seen: {', '.join(o['seen']) or 'none'}"
        + (f" (excused by subscribe: {', '.join(o['excused'])})" if o["excused"] else ""),
        f"  forbidden by the row: {', '.join(o['forbidden']) or 'none'}; never-read {o['unread']}",
        f"  recovery after heals: {len(rec)} measured, max {max(rec, default=0):.2f} s, mean "
        f"{(sum(rec) / len(rec)) if rec else 0:.2f} s; {slow} not recovered before the next fault",
        f"  phases: {json.dumps({k: round(v, 1) if v is not None else None for k, v in o['phases'].items()})}",
    ]
    for what in ("liveness", "crash"):
        if o[what]:
            parts.append(f"  {what.upper()}: {o[what]}")
    if o.get("unreadable_allowed"):
        parts.append(f"  allowed by the weak row: {o['unreadable_allowed']}")
    return "\n".join(parts)


def cell(row, family, outcomes):
    """The seeds' outcomes as one matrix cell (sim/src/matrix.rs `Cell`)."""
    anomalies, forbidden_seen = {}, set()
    unread = None
    liveness = crashes = None
    sends = operations = 0
    faults = {}
    rec = []
    for o in sorted(outcomes, key=lambda o: o["seed"]):
        sends += o["sends"]
        operations += o["operations"]
        for kind, n in o.get("faults", {}).items():
            faults[kind] = faults.get(kind, 0) + n
        rec += [r["seconds"] for r in o["recoveries"] if r["seconds"] is not None]
        for c in o["seen"]:
            f = anomalies.setdefault(c, {"seeds": 0, "first": o["seed"]})
            f["seeds"] += 1
        forbidden_seen.update(o["forbidden"])
        if o["unread"]:
            unread = unread or {"seeds": 0, "first": o["seed"], "instances": 0}
            unread["seeds"] += 1
            unread["instances"] += o["unread"]
        if o["liveness"]:
            liveness = liveness or {"seeds": 0, "first": o["seed"], "text": o["liveness"]}
            liveness["seeds"] += 1
        if o["crash"]:
            crashes = crashes or {"seeds": 0, "first": o["seed"], "text": o["crash"]}
            crashes["seeds"] += 1
    n = len(outcomes)
    parts = []
    for c in ALL_CLASSES:
        if c in anomalies:
            mark = "**" if c in forbidden_seen else ""
            parts.append(f"{mark}{c}{mark} {anomalies[c]['seeds']}/{n} (seed {anomalies[c]['first']})")
    if unread:
        parts.append(f"never-read {unread['seeds']}/{n} (seed {unread['first']}; "
                     f"{unread['instances']} of {sends} values)")
    for what, f in (("liveness", liveness), ("panic", crashes)):
        if f:
            parts.append(f"**{what}** {f['seeds']}/{n} (seed {f['first']})")
    text = "; ".join(parts) if parts else f"none (0/{n})"
    loss = any(c in anomalies for c in LOST_CLASSES) or (row["acks"] == 0 and unread)
    if liveness or crashes or forbidden_seen:
        verdict = "VIOLATED"
    elif not anomalies and not loss:
        verdict = "clean"
    else:
        verdict = "allowed"
    return {
        "row": row_label(row), "family": family, "seeds": n, "verdict": verdict,
        "text": f"{verdict}: {text}", "forbidden": sorted(forbidden_seen), "operations": operations,
        "sends": sends, "faults": faults, "liveness": liveness, "crashes": crashes,
        "recovery_s": {"measured": len(rec), "max": max(rec, default=None),
                       "mean": round(sum(rec) / len(rec), 2) if rec else None},
    }


def cell_summary(c):
    return (f"| {c['row']} | {c['family']} (real processes) | {c['text']} |\n"
            f"jepsen: {c['seeds']} seeds, {c['operations']} operations, faults "
            f"{json.dumps(c['faults'], sort_keys=True)}, recovery after heal max "
            f"{c['recovery_s']['max']} s mean {c['recovery_s']['mean']} s; verdict {c['verdict']}")


# --- HTML ------------------------------------------------------------------------------------

WIDTH, MARGIN = 1100.0, 50.0
COLORS = ["#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]
FAULT_COLORS = {"kill": "#d62728", "pause": "#ff9896", "netem": "#bcbd22", "disk-full": "#8c564b",
                "clock": "#17becf", "wipe": "#7f7f7f", "power": "#000000", "power-all": "#393b79"}


def write_html(path, args, row, o, history_path):
    events = load(history_path)
    end = max((e["time"] for e in events), default=1) / 1e9 or 1.0
    x = lambda t: MARGIN + t / end * (WIDTH - 2 * MARGIN)  # noqa: E731
    svg = [f"<svg width='{WIDTH}' height='420' xmlns='http://www.w3.org/2000/svg' "
           "style='border:1px solid #ccc'>"]
    # Fault bands: from a fault to its heal.
    nemesis = [e for e in events if e["process"] == "nemesis"]
    open_at = {}
    lane = 0
    for e in nemesis:
        v = e["value"] if isinstance(e["value"], dict) else {}
        key = json.dumps(v, sort_keys=True)
        if e["f"] not in HEALS:
            open_at[key] = e["time"] / 1e9
        elif key in open_at:
            start = open_at.pop(key)
            kind = v.get("kind", "?")
            color = FAULT_COLORS.get(kind.replace("-leader", ""), "#e377c2")
            label = html.escape(json.dumps(v))
            svg.append(f"<rect x='{x(start):.1f}' y='{20 + 14 * lane}' width='{max(x(e['time'] / 1e9) - x(start), 2):.1f}' "
                       f"height='12' fill='{color}' opacity='0.8'><title>{label}</title></rect>"
                       f"<text x='{x(start) + 2:.1f}' y='{30 + 14 * lane}' font-size='10'>{html.escape(kind)}</text>")
            lane = (lane + 1) % 3
        if e["f"] == "heal-all":
            svg.append(f"<line x1='{x(e['time'] / 1e9):.1f}' x2='{x(e['time'] / 1e9):.1f}' y1='15' y2='400' "
                       "stroke='#000' stroke-dasharray='4,3'><title>every fault healed</title></line>")
    # Operations per second: ok sends, info sends, reads.
    buckets = int(end) + 1
    series = {"sends ok/s": [0] * buckets, "sends info/s": [0] * buckets, "records read/s": [0] * buckets}
    offsets = {}
    for e in events:
        if e["process"] == "nemesis" or e["type"] == "invoke":
            continue
        b = min(int(e["time"] / 1e9), buckets - 1)
        if e["f"] == "send":
            series["sends ok/s" if e["type"] == "ok" else "sends info/s"][b] += 1
            if e["type"] == "ok":
                for mop in e["value"]:
                    offsets.setdefault(mop[1], []).append((e["time"] / 1e9, mop[2][0]))
        elif e["f"] == "poll" and e["type"] == "ok":
            series["records read/s"][b] += sum(len(p) for p in e["value"][0][1].values())
    top = max([max(s) for s in series.values()] + [1])
    y = lambda v: 230 - v / top * 160  # noqa: E731
    for i, (name, values) in enumerate(series.items()):
        points = " ".join(f"{x(t + 0.5):.1f},{y(v):.1f}" for t, v in enumerate(values))
        svg.append(f"<polyline fill='none' stroke='{COLORS[i]}' stroke-width='1.5' points='{points}'/>"
                   f"<text x='{MARGIN + 160 * i}' y='245' fill='{COLORS[i]}' font-size='12'>{name}</text>")
    svg.append(f"<text x='5' y='75' font-size='11'>{top}</text>")
    off_top = max([o for pts in offsets.values() for _, o in pts] + [1])
    for i, (key, pts) in enumerate(sorted(offsets.items())):
        color = COLORS[(i + 3) % len(COLORS)]
        for t, off in pts[:: max(1, len(pts) // 600)]:
            svg.append(f"<circle cx='{x(t):.1f}' cy='{390 - off / off_top * 130:.1f}' r='1.2' fill='{color}'/>")
        svg.append(f"<text x='{MARGIN + 120 * i}' y='265' fill='{color}' font-size='12'>offset acked, {key}</text>")
    svg.append(f"<text x='{MARGIN}' y='415' font-size='11'>0 s</text><text x='{WIDTH - MARGIN}' y='415' "
               f"font-size='11' text-anchor='end'>{end:.0f} s</text></svg>")
    verdict = ("<p class=bad>VIOLATION: " + html.escape(", ".join(o["forbidden"]) + " " + (o["liveness"] or "") + " " + (o["crash"] or "")) + "</p>"
               if o["forbidden"] or o["liveness"] or o["crash"] else "<p class=good>no violation of the row's promise</p>")
    bug = f"--bug {args.bug} " if args.bug else ""
    replay = (f"cargo xtask jepsen {bug}--row \"{args.row}\" --faults {args.faults} --seed {o['seed']} "
              f"--time-limit {args.time_limit}")
    rows = "".join(
        f"<tr><td>{e['time'] / 1e9:.2f}</td><td>{html.escape(e['f'])}</td><td>{html.escape(json.dumps(e['value']))}</td></tr>"
        for e in nemesis)
    recs = "".join(f"<tr><td>{r['at_s']}</td><td>{html.escape(r['heal'])}</td><td>{r['seconds'] if r['seconds'] is not None else 'not before the next fault'}</td></tr>"
                   for r in o["recoveries"])
    anomalies = "".join(
        f"<li><b>{html.escape(c)}</b>{' (allowed)' if v['allowed'] else ''}: {v['count']}<pre>"
        + html.escape("\n".join(f"{case.get('key')}: {case['detail']} ops {case['ops']}" for case in v["cases"][:5]))
        + "</pre></li>" for c, v in o["check"]["anomalies"].items())
    page = (
        "<!doctype html><html><head><meta charset=utf-8><title>rill jepsen seed "
        f"{o['seed']}</title><style>body{{font-family:sans-serif;margin:20px}}.bad{{color:#b00;font-weight:bold}}"
        ".good{color:#080}pre{font-size:12px;background:#f6f6f6;padding:8px}td{padding:2px 8px}</style></head><body>"
        f"<h1>rill on real processes: {html.escape(row_label(row))}, faults {html.escape(args.faults)}, seed {o['seed']}</h1>"
        f"{verdict}<p>{o['operations']} operations, {o['acked']} of {o['sends']} sends acknowledged, "
        f"{o['unread']} sent values never read. Replay: <code>{html.escape(replay)}</code></p>"
        f"<h2>Timeline</h2><p>Bands: fault episodes (hover for details); dashed: every fault healed. "
        f"Lines: operations per second. Dots: offsets acknowledged per partition.</p>{''.join(svg)}"
        f"<h2>Anomalies (rill check)</h2><ul>{anomalies or '<li>none</li>'}</ul>"
        f"<h2>Recovery after each heal</h2><table><tr><th>at s</th><th>healed</th><th>seconds until every partition acked a new send</th></tr>{recs}</table>"
        f"<h2>Nemesis</h2><table><tr><th>s</th><th>f</th><th>value</th></tr>{rows}</table></body></html>\n")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(page)
