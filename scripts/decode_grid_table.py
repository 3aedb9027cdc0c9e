#!/usr/bin/env python3
"""decode.md's opening table and data/decode_weights.tsv from one run of

    thinkeys bench --decode-model --decode-ctx 1024,4096,16384,32768 --decode-batch 1,8 \
        --decode-cache full-f16,thin-f16,thin-int8 --decode-weights f32,bf16,int8,int4 --json

(int4 is optional: runs without it give the table without its columns.)

Usage: scripts/decode_grid_table.py GRID.json [GRID2.json ...] [--tsv OUT.tsv] [--note TEXT]
Prints the markdown table, then one line per issue-20 target with the cells
that miss it, so the prose under the table can be written from the same runs.
With several runs every cell is the median over the runs of its median step
time and of its fraction of the bound, and each ratio is the median of the
per-run ratios (a ratio is only taken inside one run: the host's bandwidth
moves between runs).
"""
import argparse
import json
import statistics
import sys

ALL_WEIGHTS = ["f32", "bf16", "int8", "int4"]
CACHES = ["full-f16", "thin-f16", "thin-int8"]
MIB = 1024.0 * 1024.0


def ctx_label(ctx):
    return f"{ctx // 1024}K" if ctx % 1024 == 0 else str(ctx)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("grid", nargs="+")
    ap.add_argument("--tsv")
    ap.add_argument("--note", default="")
    a = ap.parse_args()
    runs = []
    for path in a.grid:
        with open(path) as f:
            runs.append(json.load(f))
    per_run = []  # one {key: row} per run
    for run in runs:
        per_run.append({(r["shape"], r["ctx"], r["batch"], r["cache"], r["weights"]): r
                        for r in run["rows"] if not r.get("skipped")})
    present = {k[4] for p in per_run for k in p}
    WEIGHTS = [w for w in ALL_WEIGHTS if w in present]
    has_int4 = "int4" in WEIGHTS
    med = statistics.median
    cells = {}
    for key in set().union(*per_run):
        rs = [p[key] for p in per_run if key in p]
        ms = med(r["median_ms"] for r in rs)
        cells[key] = dict(rs[0], median_ms=ms, tokens_per_s=rs[0]["batch"] / (ms / 1e3),
                          fraction_of_round_probe=med(
                              r.get("fraction_of_round_probe", r["fraction_of_bandwidth"]) for r in rs))

    def run_ratio(num, den):
        """Median over the runs of num's / den's median step time, each inside one run."""
        xs = [p[num]["median_ms"] / p[den]["median_ms"] for p in per_run if num in p and den in p]
        return med(xs) if xs else None
    shapes = sorted({k[0] for k in cells})
    ctxs = sorted({k[1] for k in cells})
    batches = sorted({k[2] for k in cells})

    def get(shape, ctx, batch, cache, w):
        return cells.get((shape, ctx, batch, cache, w))

    def fmt(vals, spec):
        return " / ".join("-" if v is None else format(v, spec) for v in vals)

    names = " / ".join(WEIGHTS)
    print(f"| shape | ctx | batch | cache | tok/s {names} "
          f"| MiB/step {names} (W+KV) | % of bound {names} "
          "| int8 / bf16 time " + ("| int4 / int8 time " if has_int4 else "") +
          "| thin-int8 / thin-f16 time (bf16, int8 weights) |")
    print("|---|---:|---:|---|---|---|---|---:|" + ("---:|" if has_int4 else "") + "---|")
    below75, int8_ratio, thin_ratio, int4_ratio = [], [], [], []
    for shape in shapes:
        for batch in batches:
            for ctx in ctxs:
                for cache in CACHES:
                    rs = [get(shape, ctx, batch, cache, w) for w in WEIGHTS]
                    if all(r is None for r in rs):
                        continue
                    tok = [r and r["tokens_per_s"] for r in rs]
                    mib = [r and (r["weight_bytes"] + r["kv_bytes_read"]) / MIB for r in rs]
                    # Against the probe of each step's own round where the bench has it
                    # (the host's bandwidth moves within a run), else before/after.
                    pct = [r and 100.0 * r.get("fraction_of_round_probe", r["fraction_of_bandwidth"])
                           for r in rs]
                    ratio = ""
                    x = run_ratio((shape, ctx, batch, cache, "int8"), (shape, ctx, batch, cache, "bf16"))
                    if x is not None:
                        ratio = f"{x:.2f}"
                        if ctx == 1024 and batch == 1:
                            int8_ratio.append((x, shape, cache))
                    q4 = ""
                    if has_int4:
                        y = run_ratio((shape, ctx, batch, cache, "int4"),
                                      (shape, ctx, batch, cache, "int8"))
                        q4 = "| " + ("" if y is None else f"{y:.2f}") + " "
                        if y is not None:
                            int4_ratio.append((y, shape, ctx, batch, cache))
                    thin = ""
                    if cache == "thin-int8":
                        xs = {w: run_ratio((shape, ctx, batch, "thin-int8", w),
                                           (shape, ctx, batch, "thin-f16", w)) for w in WEIGHTS}
                        thin = " / ".join("-" if xs[w] is None else f"{xs[w]:.2f}" for w in ("bf16", "int8"))
                        thin_ratio += [(x, shape, ctx, batch, w) for w, x in xs.items() if x is not None]
                    if batch == 1:
                        for w, p in zip(WEIGHTS, pct):
                            if p is not None and p < 75.0:
                                below75.append((p, shape, ctx, cache, w))
                    print(f"| {shape} | {ctx_label(ctx)} | {batch} | {cache} | {fmt(tok, '.1f')} "
                          f"| {fmt(mib, '.0f')} | {fmt(pct, '.0f')} | {ratio} {q4}| {thin} |")

    n1 = sum(1 for k in cells if k[2] == 1)
    print(file=sys.stderr)
    print(f"batch-1 cells below 75% of the bound: {len(below75)} of {n1}", file=sys.stderr)
    for p, shape, ctx, cache, w in sorted(below75):
        print(f"  {p:.0f}% {shape} {ctx_label(ctx)} {cache} {w} weights", file=sys.stderr)
    if int8_ratio:
        lo, hi = min(x[0] for x in int8_ratio), max(x[0] for x in int8_ratio)
        print(f"int8/bf16 time at 1K batch 1: {lo:.2f}-{hi:.2f}; above 0.6: "
              f"{sum(1 for x in int8_ratio if x[0] > 0.6)} of {len(int8_ratio)}", file=sys.stderr)
    if int4_ratio:
        one = [t[0] for t in int4_ratio if t[3] == 1]
        short = [t[0] for t in int4_ratio if t[3] == 1 and t[2] == 1024]
        print(f"int4/int8 time, batch 1: {min(one):.2f}-{max(one):.2f} (1K: {min(short):.2f}-"
              f"{max(short):.2f}); all cells {min(t[0] for t in int4_ratio):.2f}-"
              f"{max(t[0] for t in int4_ratio):.2f}", file=sys.stderr)
    if thin_ratio:
        slower = [t for t in thin_ratio if t[0] > 1.0]
        print(f"thin-int8/thin-f16 time: {min(t[0] for t in thin_ratio):.2f}-"
              f"{max(t[0] for t in thin_ratio):.2f}; above 1.00 in {len(slower)} of {len(thin_ratio)}",
              file=sys.stderr)
        for x, shape, ctx, batch, w in sorted(slower, reverse=True):
            print(f"  {x:.2f} {shape} {ctx_label(ctx)} batch {batch} {w} weights", file=sys.stderr)
    # The lead-in step of each round: the first of a case's two back-to-back
    # steps, after the probe or another case (timed itself before 7faf3f0).
    def lead_runs(key):
        return [p[key] for p in per_run if key in p and "lead_in_median_ms" in p[key]]

    leads = []
    for key, r in cells.items():
        xs = [q["lead_in_median_ms"] / q["median_ms"] for q in lead_runs(key)]
        if xs and key[2] == 1:
            x = med(xs)
            leads.append((x, 100.0 * r["fraction_of_round_probe"] / x, key))
    if leads:
        xs = sorted(x for x, _, _ in leads)
        cold = sorted((p, k) for _, p, k in leads if p < 75.0)
        print(f"lead-in / timed step, batch 1: {xs[0]:.2f}-{xs[-1]:.2f} (median "
              f"{statistics.median(xs):.2f}); batch-1 cells below 75% timed on the lead-in: "
              f"{len(cold)} of {len(leads)}", file=sys.stderr)
        for p, (shape, ctx, _, cache, w) in cold:
            print(f"  {p:.0f}% {shape} {ctx_label(ctx)} {cache} {w} weights", file=sys.stderr)
    for k, run in enumerate(runs):
        bw = (run.get("read_bandwidth_gb_s_before"), run.get("read_bandwidth_gb_s_after"))
        probes = sorted(r["round_probe_gb_s"] for r in run["rows"] if "round_probe_gb_s" in r)
        span = f"; round probes {probes[0]:.1f}-{probes[-1]:.1f}" if probes else ""
        print(f"run {k + 1}: probe {bw[0]:.1f} / {bw[1]:.1f} GB/s{span}; load before "
              f"{run.get('load_average_before')}, after {run.get('load_average_after')}", file=sys.stderr)

    if a.tsv:
        with open(a.tsv + ".tmp", "w") as out:
            out.write("# thinkeys bench --decode-model --decode-ctx 1024,4096,16384,32768 --decode-batch 1,8 "
                      "--decode-cache full-f16,thin-f16,thin-int8 --decode-weights " + ",".join(WEIGHTS) + " --json\n")
            out.write(f"# median ms per step (median over the runs); {a.note}\n" if a.note else "# median ms per step (median over the runs)\n")
            out.write("shape\tcache\tweights\tctx\tbatch\tmedian_ms\tlead_in_ms_median\n")
            for key in sorted(cells):
                r = cells[key]
                qs = lead_runs(key)
                lead = med(q["lead_in_median_ms"] for q in qs) if qs else float("nan")
                out.write(f"{r['shape']}\t{r['cache']}\t{r['weights']}\t{r['ctx']}\t{r['batch']}\t"
                          f"{r['median_ms']:.3f}\t{lead:.3f}\n")
        import os
        os.replace(a.tsv + ".tmp", a.tsv)


if __name__ == "__main__":
    main()
