#!/usr/bin/env bash
# Redraws every plot of docs/results/ (SVG, next to the markdown that links it)
# from the data kept in docs/results/data/:
#   compression.tsv                 the results table of compression.md, one row per command run
#   seed_claims.json                issue 22's held-out runs (variants.md's Pareto plot,
#                                   compression.md's hd64 Pareto plot)
#   spectrum_stories260k.json       `thinkeys spectrum ... --json`
#   decode_model.tsv,               the decode.md tables (`bench --decode-model` and
#   decode_kernel_vs_full.tsv       `bench --decode`; they need a quiet machine)
#   capacity.tsv (when present)     sequences held per memory budget (capacity.md)
#   decode_weights.tsv (when present)  decode step times per weight dtype; format
#                                   in the comment above its reader below
# docs/results/data/README.md gives the command behind each file.
#   scripts/plots.sh              redraw from the stored data
#   scripts/plots.sh --measure    first re-run the cheap measurement (the spectrum, ~2 min)
# Needs gnuplot (gnuplot-nox) and Debian's /usr/bin/python3, both in setup.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
res=$root/docs/results
data=$res/data
py=/usr/bin/python3
command -v gnuplot >/dev/null || { echo "plots.sh: gnuplot not found (scripts/setup.sh installs it)" >&2; exit 1; }

if [ "${1:-}" = "--measure" ]; then
  tk=$root/build/thinkeys
  shared=${THINKEYS_SHARED:-$root/../shared}
  [ -x "$tk" ] || { echo "plots.sh: build thinkeys first (scripts/build.sh --target thinkeys)" >&2; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  head -c 300000 "$shared/data/tinystories/tinystories_val_head.txt" >"$tmp/text.txt"
  "$tk" spectrum "$shared/models/stories260K/stories260K.bin" --data "$tmp/text.txt" --json |
    $py -c 'import json,sys; j=json.load(sys.stdin); j["data"]="first 300000 bytes of tinystories_val_head.txt"; json.dump(j,sys.stdout)' \
      >"$tmp/spectrum.json"
  mv "$tmp/spectrum.json" "$data/spectrum_stories260k.json"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Tables for gnuplot: one file per series, Pareto fronts, mean spectra.
$py - "$data" "$work" <<'PY'
import json, os, sys
data, work = sys.argv[1], sys.argv[2]

def rows(name):
    with open(os.path.join(data, name)) as f:
        return [l.rstrip("\n").split("\t") for l in f if l.strip() and not l.startswith("#")]

def pareto(points):  # (x, y, ...) -> the points no cheaper-or-equal point beats
    front, best = [], float("inf")
    for p in sorted(points, key=lambda p: (p[0], p[1])):
        if p[1] < best:
            front.append(p)
            best = p[1]
    return front

def write(name, lines):
    with open(os.path.join(work, name), "w") as f:
        f.write("\n".join(lines) + "\n")

# Trained-from-scratch designs (variants.md): test.txt perplexity of issue 22's runs
# (seed_claims.json) per budget, the mean over the seeds every design of that budget
# has run (a seed one design has and another lacks would move only that point).
runs = json.load(open(os.path.join(data, "seed_claims.json")))
kv = {"mha": (4096, "MHA"), "gqa2": (1024, "GQA"), "mqa": (512, "MQA"), "lrkv12": (2048, "LRKV"),
      "mla": (1152, "MLA"), "thin4": (2560, "thin d/4"), "thin8": (2304, "thin d/8"),
      "gqa2thin4": (640, "thin d/4 + GQA")}
for budget in ("1.5M", "12M"):
    seeds = {}
    for design in kv:
        prefix = "b%s-%s-s" % (budget, design)
        got = {name[len(prefix):]: r["test"]["ppl"] for name, r in runs.items()
               if name.startswith(prefix) and "test" in r}
        if got:
            seeds[design] = got
    common = sorted(set.intersection(*(set(g) for g in seeds.values())), key=lambda x: (x != "42", int(x))) if seeds else []
    pts = [(kv[d][0], sum(g[x] for x in common) / len(common), kv[d][1])
           for d, g in seeds.items() if common]
    write("variants_%s.dat" % budget, ["%g %g \"%s\"" % p for p in pts])
    write("variants_%s_front.dat" % budget, ["%g %g" % p[:2] for p in pareto(pts)])
    write("variants_%s_seeds.txt" % budget, [("seed " if len(common) == 1 else "mean of seeds ")
                                             + ", ".join(common)])

# Post-training compression (compression.md), per model.
comp = rows("compression.tsv")
for model in ("stories260K", "llama_hd32", "gpt2_hd32"):
    mr = [r for r in comp if r[0] == model]
    if not mr:
        continue
    orig = float(mr[0][10])
    full_bytes = max(int(r[9]) for r in mr if r[1] == "queries") if any(r[1] == "queries" for r in mr) else None
    series = {}
    for r in mr:
        method, mode, share = r[1], r[2], r[3]
        label = "queries only" if method == "queries" else (
            method + ("" if mode == "none" else " " + mode) + (" share=layer" if share == "layer" else ""))
        series.setdefault(label, []).append((float(r[9]), float(r[6]), float(r[5]), float(r[7])))
    names = sorted(series)
    for i, name in enumerate(names):
        pts = sorted(series[name], key=lambda p: p[2])
        write("comp_%s_%d.dat" % (model, i), ["%g %g %g %g" % p for p in pts])
    write("comp_%s_names.txt" % model, names)
    allpts = [p for n in names if n != "queries only" for p in series[n]]
    if full_bytes:
        allpts.append((float(full_bytes), orig, 0, 0))
    write("comp_%s_front.dat" % model, ["%g %g" % p[:2] for p in pareto(allpts)])
    write("comp_%s_orig.txt" % model, ["%g %g" % (orig, full_bytes or 0)])
    ppl = [p[1] for n in names for p in series[n]] + [orig]
    dims = [p[2] for n in names for p in series[n]]
    write("comp_%s_range.txt" % model,
          ["%g %g %g %g" % (min(ppl) * 0.95, max(ppl) * 1.1, min(dims) / 1.4, max(dims) * 1.4)])

# Issue 22 item 7: the compression grid of hd64 on test.txt (seed_claims.json, hd64* keys), in
# the same series files as the sweeps above: bytes, perplexity, key dims, KL.
sc_path = os.path.join(data, "seed_claims.json")
sc = json.load(open(sc_path)) if os.path.exists(sc_path) else {}
if "hd64" in sc:
    orig, full_bytes = sc["hd64"]["test"]["ppl"], 3072  # 6 layers x 2 KV heads x 64 x (K + V) x 2 B
    series = {}
    for q, dims in ((2, 64), (4, 32), (8, 16)):
        f16_bytes = full_bytes // 2 + full_bytes // 2 // q  # values full, keys 1/q wide
        for m in ("kqsvd", "svd"):
            for mode in ("latent", "post", "pairs"):
                for key, label in (("hd64-c-%s-%s-q%d" % (m, mode, q), "%s %s" % (m, mode)),
                                   ("hd64-ft-%s-%s-q%d" % (m, mode, q), "%s %s + QK fine-tuning" % (m, mode))):
                    if "eval_test" not in sc.get(key, {}):
                        continue
                    e = sc[key]["eval_test"]
                    d = dims // 2 if mode == "pairs" else dims  # pairs: per head
                    series.setdefault(label, []).append((f16_bytes, e["perplexity_over_slices"]["mean"], d,
                                                         e["kl_over_slices"]["mean"]))
    names = sorted(series)
    for i, name in enumerate(names):
        write("comp_hd64_%d.dat" % i, ["%g %g %g %g" % p for p in sorted(series[name])])
    write("comp_hd64_names.txt", names)
    allpts = [p for n in names for p in series[n]] + [(float(full_bytes), orig, 0, 0)]
    write("comp_hd64_front.dat", ["%g %g" % p[:2] for p in pareto(allpts)])
    write("comp_hd64_orig.txt", ["%g %g" % (orig, full_bytes)])
    # The failed rows (up to 120) would flatten the ones that matter: they leave the chart.
    write("comp_hd64_range.txt", ["%g %g %g %g" % (orig * 0.97, orig * 1.45, 8 / 1.4, 64 * 1.4)])

# Mean cumulative singular-value energy over heads and layers.
spec_path = os.path.join(data, "spectrum_stories260k.json")
if os.path.exists(spec_path):
    j = json.load(open(spec_path))
    cols = []
    for kind in ("weight_keys", "weight_queries", "data_keys", "data_queries"):
        heads = [h["energy"] for L in j["layers"] for h in L[kind]]
        cols.append([sum(h[i] for h in heads) / len(heads) for i in range(len(heads[0]))])
    write("spectrum.dat", ["%d %s" % (i + 1, " ".join("%.6f" % c[i] for c in cols)) for i in range(len(cols[0]))])

# Whole-model decode: tokens/s = batch / median step time (mean of the runs'
# medians, bars from the faster and slower run), per model shape, cache and batch.
dm = rows("decode_model.tsv")
for shape in ("gqa", "mha"):
    for cache in ("full-f16", "thin-f16"):
        for batch in ("1", "8"):
            pts = []
            for r in dm:
                if r[0] == shape and r[1] == cache and r[3] == batch:
                    ms = [float(x) for x in r[4:]]
                    b = float(batch)
                    pts.append((int(r[2]), 1000 * b / (sum(ms) / len(ms)), 1000 * b / max(ms), 1000 * b / min(ms)))
            write("dm_%s_%s_b%s.dat" % (shape, cache, batch), ["%d %g %g %g" % p for p in sorted(pts)])
kv = rows("decode_kernel_vs_full.tsv")
for shape in ("gqa", "mha"):
    for cache in ("thin-f16", "thin-int8", "thin-int4", "latent-f16"):
        write("kv_%s_%s.dat" % (shape, cache),
              ["%s %s %s" % (r[2], r[3], r[4]) for r in kv if r[0] == shape and r[1] == cache])

# Optional: whole-model decode per weight dtype. decode_weights.tsv has a
# header line "shape cache weights ctx batch ms..." (tab-separated; one or
# more ms columns, one per run); one panel per (shape, batch), one series per
# (weights, cache) in it.
dw_path = os.path.join(data, "decode_weights.tsv")
if os.path.exists(dw_path):
    dw = rows("decode_weights.tsv")
    head, body = dw[0], dw[1:]
    col = {name: i for i, name in enumerate(head)}
    ms_cols = [i for i, name in enumerate(head) if name.endswith("ms")]
    series = {}
    for r in body:
        key = (r[col["shape"]], r[col["batch"]], r[col["weights"]], r[col["cache"]])
        ms = [float(r[i]) for i in ms_cols if r[i]]
        series.setdefault(key, []).append((int(r[col["ctx"]]), 1000 * float(r[col["batch"]]) * len(ms) / sum(ms)))
    panels = sorted({k[:2] for k in series}, key=lambda p: (p[0], int(p[1])))
    lines = []
    for shape, batch in panels:
        order = {"f32": 0, "bf16": 1, "f16": 2, "int8": 3, "int4": 4}
        for key in sorted((k for k in series if k[:2] == (shape, batch)),
                          key=lambda k: (order.get(k[2], 9), k[2], k[3])):
            name = "dw_%s_%s_%s_%s.dat" % key
            write(name, ["%d %g" % p for p in sorted(series[key])])
            lines.append("\t".join(key + (name,)))
    write("dw_series.txt", lines)

cap_path = os.path.join(data, "capacity.tsv")
if os.path.exists(cap_path):
    write("capacity.dat", ["\t".join(r) for r in rows("capacity.tsv")])
    with open(cap_path) as f:  # its first comment line says what is counted
        first = f.readline().lstrip("# ").strip()
    write("capacity_title.txt", [first.replace("'", "")])
PY

common="set terminal svg size 900,560 dynamic enhanced font 'Helvetica,15' background rgb 'white'
set grid lc rgb '#dddddd'
set key box opaque"

# 1. Trained designs: perplexity against KV bytes per token.
seeds_15=$(cat "$work/variants_1.5M_seeds.txt")
seeds_12=$(cat "$work/variants_12M_seeds.txt")
gnuplot <<GP
$common
set output '$res/variants_pareto.svg'
set title 'Attention designs trained from scratch (4 layers, width 256; test.txt)'
set xlabel 'KV cache bytes per token (f16, all 4 layers)'
set ylabel 'Gutenberg test.txt perplexity'
set xrange [0:4600]
set yrange [4.5:18]
set key top right
# Designs sit close together in bytes, so labels slant away from their points.
plot '$work/variants_1.5M_front.dat' w l lw 2 lc rgb '#1f77b4' dt 2 notitle, \
     '$work/variants_1.5M.dat' u 1:2 w p pt 7 ps 1.3 lc rgb '#1f77b4' t '1.5M tokens ($seeds_15)', \
     '' u 1:2:3 w labels left rotate by 40 offset 0.4,0.6 font 'Helvetica,12' notitle, \
     '$work/variants_12M_front.dat' w l lw 2 lc rgb '#d62728' dt 2 notitle, \
     '$work/variants_12M.dat' u 1:2 w p pt 5 ps 1.3 lc rgb '#d62728' t '12.3M tokens ($seeds_12)', \
     '' u 1:2:3 w labels right rotate by 40 offset -0.4,-0.6 font 'Helvetica,12' notitle
set autoscale y
GP

# 2. Post-training compression: perplexity against KV bytes per token.
style() { case $1 in svd*) echo 2 ;; *) echo 1 ;; esac; }  # weight SVD dashed, KQ-SVD solid

comp_plot() {  # model title output
  local model=$1 title=$2 out=$3 n i cmd=""
  n=$(wc -l <"$work/comp_${model}_names.txt")
  read -r orig full <"$work/comp_${model}_orig.txt"
  read -r ylo yhi xlo xhi <"$work/comp_${model}_range.txt"
  for ((i = 0; i < n; i++)); do
    name=$(sed -n "$((i + 1))p" "$work/comp_${model}_names.txt")
    cmd+="'$work/comp_${model}_$i.dat' u 1:2 w lp pt $((i % 7 + 4)) ps 1.2 lw 1.5 dt $(style "$name") lc $((i + 1)) t '$name', "
  done
  gnuplot <<GP
$common
set terminal svg size 1000,620 dynamic enhanced font 'Helvetica,15' background rgb 'white'
set output '$out'
set title '$title'
set xlabel 'KV cache bytes per token (f16, all layers)'
set ylabel 'perplexity on held-out text'
set yrange [$ylo:$yhi]
set key outside right top font 'Helvetica,13'
set arrow from graph 0, first $orig to graph 1, first $orig nohead lc rgb '#444444' dt 3
set label 'original $orig' at graph 0.02, first $orig offset 0,0.7 font 'Helvetica,12'
plot ${cmd}'$work/comp_${model}_front.dat' w l lw 3 lc rgb '#999999' dt 2 t 'Pareto front'
GP
}
comp_plot llama_hd32 'Key compression after training: Llama trained here (RoPE, GQA, head dim 32)' "$res/compression_pareto.svg"
comp_plot stories260K 'Key compression after training: stories260K (RoPE, GQA, head dim 8)' "$res/compression_pareto_stories260k.svg"
[ -f "$work/comp_hd64_names.txt" ] &&
  comp_plot hd64 'Key compression after training: hd64 (RoPE, GQA, head dim 64; test.txt)' "$res/compression_pareto_hd64.svg"

# 3. Perplexity and KL against key dimensions, per method (trained Llama).
rank_plot() {  # model title output
  local model=$1 title=$2 out=$3 n i cmd_p="" cmd_k=""
  n=$(wc -l <"$work/comp_${model}_names.txt")
  read -r ylo yhi xlo xhi <"$work/comp_${model}_range.txt"
  for ((i = 0; i < n; i++)); do
    name=$(sed -n "$((i + 1))p" "$work/comp_${model}_names.txt")
    line="w lp pt $((i % 7 + 4)) ps 1.2 lw 1.5 dt $(style "$name") lc $((i + 1))"
    cmd_p+="'$work/comp_${model}_$i.dat' u 3:2 $line notitle, "
    cmd_k+="'$work/comp_${model}_$i.dat' u 3:4 $line t '$name', "
  done
  gnuplot <<GP
set terminal svg size 1500,600 dynamic enhanced font 'Helvetica,15' background rgb 'white'
set output '$out'
set grid lc rgb '#dddddd'
set multiplot title '$title'
set xlabel 'key dimensions cached per KV head (log scale)'
set logscale x 2
set logscale y
set xrange [$xlo:$xhi]
set xtics (1,2,4,8,16,32)
set tmargin at screen 0.9
set bmargin at screen 0.14
set lmargin at screen 0.06
set rmargin at screen 0.38
set ylabel 'perplexity'
unset logscale y
set yrange [$ylo:$yhi]
plot ${cmd_p%, }
set logscale y
set lmargin at screen 0.47
set rmargin at screen 0.79
set ylabel 'KL(original || compressed), nats/token (log scale)'
set yrange [*:*]
set key at screen 0.99, screen 0.88 font 'Helvetica,12' box opaque
plot ${cmd_k%, }
unset multiplot
GP
}
rank_plot llama_hd32 'Llama trained here (head dim 32): quality against key width, on held-out text' "$res/compression_rank.svg"
rank_plot stories260K 'stories260K (head dim 8): quality against key width, on held-out text' "$res/compression_rank_stories260k.svg"

# 4. Key against query singular-value energy (stories260K).
if [ -f "$work/spectrum.dat" ]; then
  gnuplot <<GP
$common
set output '$res/compression_spectrum.svg'
set title 'stories260K: where key and query energy lives (mean over heads and layers)'
set xlabel 'directions kept (of head dim 8)'
set ylabel 'fraction of singular-value energy captured'
set yrange [0.5:1.01]
set xrange [0.8:8.2]
set key bottom right
plot '$work/spectrum.dat' u 1:4 w lp pt 7 lw 2 lc rgb '#d62728' t 'keys the model produces (data)', \
     '' u 1:5 w lp pt 5 lw 2 lc rgb '#1f77b4' t 'queries the model produces (data)', \
     '' u 1:2 w lp pt 6 lw 1.5 dt 2 lc rgb '#d62728' t 'W_K (weights)', \
     '' u 1:3 w lp pt 4 lw 1.5 dt 2 lc rgb '#1f77b4' t 'W_Q (weights)'
GP
fi

# 5. Decode speed by context: whole model (tokens/s) and attention alone
#    (time against full-width f16 keys in the same run), per cache layout.
gnuplot <<GP
set terminal svg size 1600,600 dynamic enhanced font 'Helvetica,15' background rgb 'white'
set output '$res/decode_tokens_per_s.svg'
set grid lc rgb '#dddddd'
set multiplot title 'Decode on a 2-vCPU Intel VM (AVX-512); thin = keys at 1/4 of head dim'
set tmargin at screen 0.86
set bmargin at screen 0.13
set lmargin at screen 0.05
set rmargin at screen 0.40
set title 'Whole model (125-134M params, f32 weights, random)'
set xlabel 'context (tokens cached per sequence, log scale)'
set ylabel 'decode tokens/s (batch / median step time)'
set logscale x 2
set xrange [700:12000]
set xtics (1024, 2048, 4096, 8192)
set yrange [0:450]
set key top right maxrows 4 font 'Helvetica,12' box opaque
plot '$work/dm_gqa_full-f16_b8.dat' u 1:2:3:4 w yerrorlines pt 7 lw 2 lc 1 t 'gqa full-f16, batch 8', \
     '$work/dm_gqa_thin-f16_b8.dat' u 1:2:3:4 w yerrorlines pt 5 lw 2 lc 2 t 'gqa thin-f16, batch 8', \
     '$work/dm_mha_full-f16_b8.dat' u 1:2:3:4 w yerrorlines pt 6 lw 2 lc 3 t 'mha full-f16, batch 8', \
     '$work/dm_mha_thin-f16_b8.dat' u 1:2:3:4 w yerrorlines pt 4 lw 2 lc 4 t 'mha thin-f16, batch 8', \
     '$work/dm_gqa_full-f16_b1.dat' u 1:2:3:4 w yerrorlines pt 7 lw 2 dt 2 lc 1 t 'gqa full-f16, batch 1', \
     '$work/dm_gqa_thin-f16_b1.dat' u 1:2:3:4 w yerrorlines pt 5 lw 2 dt 2 lc 2 t 'gqa thin-f16, batch 1', \
     '$work/dm_mha_full-f16_b1.dat' u 1:2:3:4 w yerrorlines pt 6 lw 2 dt 2 lc 3 t 'mha full-f16, batch 1', \
     '$work/dm_mha_thin-f16_b1.dat' u 1:2:3:4 w yerrorlines pt 4 lw 2 dt 2 lc 4 t 'mha thin-f16, batch 1'
set lmargin at screen 0.49
set rmargin at screen 0.77
set title 'Attention alone, one 7B-shaped layer, batch 8'
set ylabel 'attention time / time with full-width f16 keys'
set xrange [700:48000]
set xtics (1024, 4096, 8192, 16384, 32768)
set logscale y
set yrange [0.5:6]
set ytics (0.5, 0.625, 0.75, 1, 2, 3, 4, 5)
set key at screen 0.995, screen 0.86 right top vertical maxrows 10 font 'Helvetica,12' box opaque
plot 1 w l lc rgb '#444444' dt 3 t 'full-f16', \
     0.625 w l lc rgb '#888888' dt 4 t 'thin-f16 bytes / full-f16 bytes', \
     '$work/kv_gqa_thin-f16.dat' u 1:3 w lp pt 5 lw 2 lc 2 t 'gqa thin-f16', \
     '$work/kv_gqa_thin-int8.dat' u 1:3 w lp pt 9 lw 2 lc 5 t 'gqa thin-int8', \
     '$work/kv_gqa_thin-int4.dat' u 1:3 w lp pt 11 lw 2 lc 6 t 'gqa thin-int4', \
     '$work/kv_gqa_latent-f16.dat' u 1:3 w lp pt 13 lw 2 lc 7 t 'gqa latent-f16', \
     '$work/kv_mha_thin-f16.dat' u 1:3 w lp pt 4 lw 2 dt 2 lc 2 t 'mha thin-f16', \
     '$work/kv_mha_thin-int8.dat' u 1:3 w lp pt 8 lw 2 dt 2 lc 5 t 'mha thin-int8', \
     '$work/kv_mha_thin-int4.dat' u 1:3 w lp pt 10 lw 2 dt 2 lc 6 t 'mha thin-int4', \
     '$work/kv_mha_latent-f16.dat' u 1:3 w lp pt 12 lw 2 dt 2 lc 7 t 'mha latent-f16'
unset multiplot
GP

# 5b. Decode tokens/s against context per weight dtype, when measured: one
# panel per shape and batch; colour by weights, dash by cache.
if [ -f "$work/dw_series.txt" ]; then
  weight_colour() { case $1 in f32) echo '#7f7f7f' ;; bf16) echo '#1f77b4' ;; int8) echo '#2ca02c' ;; *) echo '#d62728' ;; esac; }
  cache_dash() { case $1 in full-f16) echo 1 ;; thin-f16) echo 2 ;; *) echo 3 ;; esac; }
  plots=""
  for panel in $(cut -f1,2 "$work/dw_series.txt" | sort -u -k1,1 -k2,2n | tr '\t' ':'); do
    shape=${panel%%:*} batch=${panel##*:} cmd=""
    while IFS=$'\t' read -r s b w c file; do
      [ "$s" = "$shape" ] && [ "$b" = "$batch" ] || continue
      cmd+="'$work/$file' u 1:2 w lp pt 7 ps 0.8 lw 2 dt $(cache_dash "$c") lc rgb '$(weight_colour "$w")' t '$w, $c', "
    done <"$work/dw_series.txt"
    plots+="set title '$shape, batch $batch'
plot ${cmd%, }
"
  done
  gnuplot <<GP
$common
set terminal svg size 1300,1000 dynamic enhanced font 'Helvetica,13' background rgb 'white'
set output '$res/decode_weights.svg'
set multiplot layout 2,2 title 'Whole-model decode by weights (colour) and cache (dash), 12 x 768 Llama shape'
set xlabel 'context (tokens cached per sequence, log scale)'
set ylabel 'decode tokens/s'
set logscale x 2
set offsets graph 0.05, graph 0.05, 0, 0
set yrange [0:*]
set key top right font 'Helvetica,10' box opaque
$plots
unset multiplot
GP
fi

# 6. Sequences held against the memory budget, once capacity.md has data.
if [ -f "$work/capacity.dat" ]; then
  gnuplot <<GP
$common
set output '$res/capacity.svg'
set title '$(cat "$work/capacity_title.txt")'
set xlabel 'cache memory budget (GiB)'
set ylabel 'sequences held'
set key top left
plot for [c=2:*] '$work/capacity.dat' u 1:c w lp lw 2 t columnhead(c)
GP
fi
echo "plots written to $res"
