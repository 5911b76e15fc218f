#!/usr/bin/env python3
"""The benchmark report: reads the JSON lines of `make bench` (bench-results.jsonl) and
`make bench-net` (net-results.jsonl), prints every workload as a Markdown table of medians
with ratios to weft, and draws the plots: one PNG per network workload (server CPU per
message against connection count, one line per server; a workload without that figure plots
its headline value) and one bar chart of the single-thread workloads.

Workloads it does not know (peers add them) get the generic table: median of `value`, the
ratio, and the medians of every other numeric field. Lines are grouped by workload, by
`conns` and `threads` where present, and by impl.

Usage: bench/report.py [--bench FILE] [--net FILE] [--out DIR] [--no-plots]
  With neither --bench nor --net, reads both from build/bench/. Plots go to DIR
  (default: build/bench/plots/); without matplotlib (Debian: python3-matplotlib) the tables
  are printed and the plots skipped, with a note on stderr.
"""
import argparse
import json
import math
import os
import statistics
import sys

CORE = {"impl", "workload", "n", "value", "unit", "conns", "threads"}


def load(path):
    """The records of a JSON-lines file, in order; [] if it does not exist."""
    recs = []
    if not path or not os.path.exists(path):
        return recs
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                r = json.loads(line)
            except ValueError:
                print(f"report: not JSON, ignored: {line[:80]}", file=sys.stderr)
                continue
            if isinstance(r, dict) and {"impl", "workload", "value"} <= r.keys():
                recs.append(r)
    return recs


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def median(recs, key):
    vals = [float(r[key]) for r in recs if is_num(r.get(key))]
    return statistics.median(vals) if vals else None


def higher_is_better(unit):
    """Rates (msg/s, ops/s) are better high; times, latencies and bytes are better low."""
    return unit.endswith("/s") and unit != "s"


def fmt(v):
    if v is None:
        return ""
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if v else "0"


def is_weft(impl):
    return impl == "weft" or impl.startswith("weft_") or impl.startswith("weft-")


def group(recs):
    """{workload: {(conns, threads): {impl: [records]}}}, each level in first-seen order."""
    out = {}
    for r in recs:
        key = (r.get("conns"), r.get("threads"))
        out.setdefault(r["workload"], {}).setdefault(key, {}).setdefault(r["impl"], []).append(r)
    return out


def impl_order(impls):
    # weft first (plain "weft", then its modes), then the peers, alphabetically.
    return sorted(impls, key=lambda i: (not is_weft(i), i != "weft", i))


def markdown(hdr, rows):
    lines = ["| " + " | ".join(hdr) + " |", "|" + "|".join("---" for _ in hdr) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def ratio_text(base, v, unit):
    """How many times better weft (base) is than v: > 1 means weft is ahead."""
    if base is None or v is None or base <= 0 or v <= 0:
        return "-"
    return f"{(base / v) if higher_is_better(unit) else (v / base):.2f}x"


def tcp_echo_table(groups):
    """tcp_echo: msg/s with the ratio to weft, latencies, and the server's CPU per message
    with its ratio to epoll_raw (the practical limit; bench-workloads.md)."""
    rows = []
    for (conns, threads), by_impl in sorted(groups.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1] or 0)):
        impls = impl_order(by_impl)
        base = next((median(by_impl[i], "value") for i in impls if is_weft(i)), None)
        raw = median(by_impl["epoll_raw"], "server_us_per_msg") if "epoll_raw" in by_impl else None
        first = True
        for i in impls:
            rs = by_impl[i]
            v = median(rs, "value")
            srv = median(rs, "server_us_per_msg")
            rows.append([
                f"{conns:,}" if first and conns is not None else "",
                f"**{i}**" if is_weft(i) else i, fmt(v), ratio_text(base, v, "msg/s"),
                fmt(median(rs, "p50_us")), fmt(median(rs, "p99_us")), fmt(srv),
                f"{srv / raw:.2f}" if srv and raw else "", str(len(rs))])
            first = False
    return markdown(["conns", "server", "msg/s", "weft vs it", "p50 µs", "p99 µs",
                     "srv µs/msg", "srv / epoll_raw", "runs"], rows)


def generic_table(groups):
    """Any workload: the median headline with the ratio to weft, and the medians of every
    other numeric field its lines carry."""
    keys, has_conns, has_threads = [], False, False
    for (conns, threads), by_impl in groups.items():
        has_conns |= conns is not None
        has_threads |= threads is not None
        for rs in by_impl.values():
            for r in rs:
                for k, v in r.items():
                    if k not in CORE and is_num(v) and k not in keys:
                        keys.append(k)
    rows = []
    for (conns, threads), by_impl in sorted(groups.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1] or 0)):
        impls = impl_order(by_impl)
        unit = next(iter(by_impl.values()))[0].get("unit", "")
        base_impl = next((i for i in impls if is_weft(i)), None)
        base = median(by_impl[base_impl], "value") if base_impl else None
        for i in impls:
            rs = by_impl[i]
            v = median(rs, "value")
            row = [f"{conns:,}"] if has_conns else []
            row += [str(threads)] if has_threads else []
            row += [f"**{i}**" if is_weft(i) else i, fmt(v), rs[0].get("unit", ""),
                    ratio_text(base, v, unit) if i != base_impl else "", str(len(rs))]
            row += [fmt(median(rs, k)) for k in keys]
            rows.append(row)
    hdr = (["conns"] if has_conns else []) + (["threads"] if has_threads else [])
    hdr += ["impl", "median", "unit", "weft vs it", "runs"] + keys
    return markdown(hdr, rows)


def print_tables(title, recs):
    if not recs:
        return
    print(f"\n## {title}\n")
    print("Medians of the runs. 'weft vs it': how many times better weft's median is than "
          "this implementation's (>1: weft ahead; the first weft line is the base).")
    for w, groups in group(recs).items():
        print(f"\n### {w}\n")
        print(tcp_echo_table(groups) if w == "tcp_echo" else generic_table(groups))


# ------------------------------------------------------------------------------ plots

def plot_net(plt, w, groups, out):
    """One line per server: server CPU per message (or the headline) against connections."""
    series, medians, ylabel = {}, {}, None
    for (conns, threads), by_impl in groups.items():
        if conns is None:
            return None
        for i, rs in by_impl.items():
            key = "server_us_per_msg" if median(rs, "server_us_per_msg") is not None else "value"
            ylabel = ylabel or ("server CPU µs per message" if key == "server_us_per_msg"
                                else f"{w} ({rs[0].get('unit', '')}; dashed: p50 µs)")
            label = i if threads is None else f"{i} ({threads} threads)"
            series.setdefault(label, []).append((conns, median(rs, key)))
            # A latency headline (its p99) gets its p50 beside it, dashed, in the same colour.
            if key == "value" and median(rs, "p50_us") is not None:
                medians.setdefault(label, []).append((conns, median(rs, "p50_us")))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label in impl_order(series):
        pts = sorted(p for p in series[label] if p[1] is not None)
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                        linewidth=2.5 if is_weft(label) else 1.5, label=label)
        if label in medians:
            pts = sorted(medians[label])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", linestyle="--",
                    color=line.get_color(), linewidth=1.2)
    ax.set_xscale("log")
    xs = sorted({c for (c, _t) in groups})
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{x:,}" for x in xs])
    if w != "tcp_echo" and min((v for s in series.values() for _c, v in s if v), default=1) > 0:
        ax.set_yscale("log")  # latencies span orders of magnitude
    ax.set_xlabel("connections")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{w}: lower is better")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    path = os.path.join(out, f"{w}.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_micro(plt, recs, out):
    """One panel per workload (the units differ), one bar per implementation."""
    groups = group(recs)
    names = list(groups)
    cols = min(3, len(names))
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for k, w in enumerate(names):
        ax = axes[k // cols][k % cols]
        merged = {}
        for by_impl in groups[w].values():
            for i, rs in by_impl.items():
                merged.setdefault(i, []).extend(rs)
        impls = impl_order(merged)
        vals = [median(merged[i], "value") for i in impls]
        bars = ax.bar(range(len(impls)), vals,
                      color=["tab:blue" if is_weft(i) else "tab:gray" for i in impls])
        ax.bar_label(bars, labels=[fmt(v) for v in vals], fontsize=7)
        ax.set_xticks(range(len(impls)))
        ax.set_xticklabels(impls, rotation=30, ha="right", fontsize=8)
        unit = merged[impls[0]][0].get("unit", "")
        ax.set_title(f"{w} ({unit}, {'higher' if higher_is_better(unit) else 'lower'} is better)",
                     fontsize=9)
        if len(vals) > 1 and min(vals) > 0 and max(vals) / min(vals) > 20:
            ax.set_yscale("log")
    for k in range(len(names), rows * cols):
        axes[k // cols][k % cols].axis("off")
    path = os.path.join(out, "micro.png")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plots(bench, net, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: matplotlib not installed (python3-matplotlib): no plots", file=sys.stderr)
        return
    os.makedirs(out, exist_ok=True)
    made = []
    for w, groups in group(net).items():
        p = plot_net(plt, w, groups, out)
        if p:
            made.append(p)
    if bench:
        made.append(plot_micro(plt, bench, out))
    for p in made:
        print(f"report: wrote {p}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", help="make bench's JSON lines")
    ap.add_argument("--net", help="make bench-net's JSON lines")
    ap.add_argument("--out", default="build/bench/plots", help="folder for the PNGs")
    ap.add_argument("--no-plots", action="store_true")
    a = ap.parse_args()
    if not a.bench and not a.net:
        a.bench, a.net = "build/bench/bench-results.jsonl", "build/bench/net-results.jsonl"
    bench, net = load(a.bench), load(a.net)
    if not bench and not net:
        print("report: no results to report", file=sys.stderr)
        return 1
    print_tables("Single-thread workloads (make bench)", bench)
    print_tables("Network workloads (make bench-net)", net)
    if not a.no_plots:
        plots(bench, net, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
