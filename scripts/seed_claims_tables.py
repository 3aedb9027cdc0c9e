#!/usr/bin/python3
"""Tables of issue 22's seed-claim runs, read from the run directories that
scripts/seed_claims_queue.sh writes (ROOT/NAME/{cmd.txt, *.json, DONE}).

  /usr/bin/python3 scripts/seed_claims_tables.py [ROOT] [--json OUT] [--bin THINKEYS]
      [--doc docs/results/seed_claims.md]

Prints the Markdown tables of docs/results (variants.md, finetune.md,
selection.md) with every finished run, and the state of the unfinished ones
(step of their last checkpoint); --json also writes every figure with the
commands that produced it; --doc replaces the text between the
"<!-- seed-claims tables -->" and "<!-- end seed-claims tables -->" lines of
that file with the tables. Re-run it as more runs finish: nothing here is
typed in by hand. Perplexities are on gutenberg/test.txt (3 disjoint slices of
2,048 tokens of each of its 14 books): a run's figure is the mean over its
slices; spreads are over seeds (sample sd, or both values for two seeds).
"""
import argparse
import contextlib
import io
import json
import math
import os
import re
import statistics
import subprocess
import sys

DESIGNS = [  # name in the run directory, label, what differs from MHA
    ("mha", "MHA (8 KV heads)", ""),
    ("gqa2", "GQA (2 KV heads)", "--kv-heads 2"),
    ("thin4", "thin keys d/4 (8 of 32 per head)", "--d-select 64 --query-pre-attn-scalar 8"),
    ("thin8", "thin keys d/8 (4 of 32 per head)", "--d-select 32 --query-pre-attn-scalar 4"),
    ("gqa2thin4", "thin keys d/4 on GQA (2 KV heads)",
     "--kv-heads 2 --d-select 64 --query-pre-attn-scalar 8"),
    ("mqa", "MQA (1 KV head)", "--kv-heads 1"),
    ("mla", "MLA (latent 128 + RoPE key 16)", "--mla-latent 128 --mla-rope-dim 16"),
]
ONLY_1_5M = {"mqa", "mla"}  # variants.md's table, trained at 1.5M tokens only
EQUAL_BYTES = [  # (LRKV, GQA) pairs at equal KV bytes
    ("lrkv4", "LRKV rank 4", "--lrkv-rank 4", "gqa2", "GQA 2 KV heads", "--kv-heads 2"),
    ("lrkv12", "LRKV rank 12", "--lrkv-rank 12", "gqa4", "GQA 4 KV heads", "--kv-heads 4"),
]


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Runs:
    def __init__(self, root, binary):
        self.root = root
        self.binary = binary
        self.record = {}

    def dir(self, name):
        return os.path.join(self.root, name)

    def done(self, name):
        return os.path.exists(os.path.join(self.dir(name), "DONE"))

    def commands(self, name):
        try:
            with open(os.path.join(self.dir(name), "cmd.txt")) as f:
                lines = [l.strip() for l in f if l.strip()]
        except OSError:
            return []
        return list(dict.fromkeys(lines))  # a resumed stage logs its command again

    def state(self, name):
        """'done', 'step S/T' of a training that checkpointed, or 'not started'."""
        d = self.dir(name)
        if self.done(name):
            return "done" if self.test_ppl(name) else "DONE but no readable eval_test.json"
        st = load(os.path.join(d, "model", "checkpoint", "trainer_state.json"))
        if st:
            steps = st.get("config", {}).get("steps")
            return f"training, checkpoint at step {st['step']}/{steps}"
        for stage in ("eval_test", "eval_valid", "finetune", "train", "selection", "compress"):
            if os.path.exists(os.path.join(d, stage + ".json.tmp")):
                return f"in {stage}"
        return "not started" if not os.path.isdir(d) else "started"

    def test_ppl(self, name):
        """Mean test.txt perplexity over the slices of a finished run, or None."""
        if not self.done(name):
            return None
        e = load(os.path.join(self.dir(name), "eval_test.json"))
        if not e:
            return None
        out = {"ppl": e["perplexity_over_slices"]["mean"],
               "slice_sd": e["perplexity_over_slices"]["sd"]}
        if "kl_over_slices" in e:
            out["kl"] = e["kl_over_slices"]["mean"]
            out["top1"] = statistics.mean(
                s.get("top1_agreement", float("nan")) for s in e["slices"])
        self.record[name] = {"test": out, "commands": self.commands(name),
                             "train": load(os.path.join(self.dir(name), "train.json"))}
        return out

    def kv_bytes(self, name):
        model = os.path.join(self.dir(name), "model")
        if not os.path.exists(os.path.join(model, "config.json")) or not self.binary:
            return None
        try:
            out = subprocess.run([self.binary, "info", model, "--json"], check=True,
                                 capture_output=True, text=True).stdout
            return json.loads(out)["kv_bytes_per_token_f16"]
        except (OSError, subprocess.CalledProcessError, ValueError, KeyError):
            return None


def spread(values):
    """'a' for one value, 'a / b' for two, 'mean ± sd' for more."""
    if not values:
        return "-"
    if len(values) <= 2:
        return " / ".join(f"{v:.2f}" for v in values)
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def pct(values):
    if not values:
        return "-"
    s = " / ".join(f"{100 * v:+.1f}%" for v in values)
    if len(values) > 2:
        s = f"{100 * statistics.mean(values):+.1f}% ± {100 * statistics.stdev(values):.1f}"
    return s


def item2(runs, budget, seeds=(42, 7)):
    print(f"\n### Item 2 at {budget} tokens (test.txt perplexity per seed {' / '.join(map(str, seeds))})\n")
    print("| design | KV bytes/token (f16) | perplexity | vs MHA, same seed | state |")
    print("|---|---:|---:|---:|---|")
    mha = {s: runs.test_ppl(f"b{budget}-mha-s{s}") for s in seeds}
    for key, label, _ in DESIGNS:
        if key in ONLY_1_5M and budget != "1.5M":
            continue
        ppl, gaps, states, kv = [], [], [], None
        for s in seeds:
            name = f"b{budget}-{key}-s{s}"
            r = runs.test_ppl(name)
            kv = kv or runs.kv_bytes(name)
            if r:
                ppl.append(r["ppl"])
                if mha[s] and key != "mha":
                    gaps.append(r["ppl"] / mha[s]["ppl"] - 1)
            else:
                states.append(f"s{s}: {runs.state(name)}")
        print(f"| {label} | {kv if kv else '-'} | {spread(ppl)} | {pct(gaps) if key != 'mha' else ''} | "
              f"{'; '.join(states) if states else 'done'} |")


def item3(runs, seeds=(42, 7, 1234)):
    print("\n### Item 3: LRKV against GQA at equal KV bytes, 1.5M tokens "
          f"(test.txt perplexity, seeds {', '.join(map(str, seeds))})\n")
    print("| KV bytes/token (f16) | design | perplexity (mean ± sd) | per seed | LRKV vs GQA, same seed | state |")
    print("|---:|---|---:|---|---:|---|")
    for lk, llabel, _, gk, glabel, _ in EQUAL_BYTES:
        res = {}
        for key, label in ((lk, llabel), (gk, glabel)):
            vals, states, kv = {}, [], None
            for s in seeds:
                name = f"b1.5M-{key}-s{s}"
                kv = kv or runs.kv_bytes(name)
                r = runs.test_ppl(name)
                if r:
                    vals[s] = r["ppl"]
                else:
                    states.append(f"s{s}: {runs.state(name)}")
            res[key] = (label, vals, states, kv)
        gaps = [res[lk][1][s] / res[gk][1][s] - 1 for s in seeds
                if s in res[lk][1] and s in res[gk][1]]
        for key in (lk, gk):
            label, vals, states, kv = res[key]
            v = list(vals.values())
            ms = (f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f}" if len(v) > 1
                  else (f"{v[0]:.2f}" if v else "-"))
            print(f"| {kv if kv else '-'} | {label} | {ms} | "
                  f"{' / '.join(f'{x:.2f}' for x in v) or '-'} | "
                  f"{pct(gaps) if key == lk else ''} | {'; '.join(states) if states else 'done'} |")


def item5(runs):
    print("\n### Item 5: QK fine-tuning after 1/4 keys (post, one key space per layer), "
          "base b1.5M-gqa2-s42\n")
    base = runs.test_ppl("b1.5M-gqa2-s42")
    print(f"Base model (uncompressed) test.txt perplexity: {base['ppl']:.2f}" if base
          else "Base model not finished yet.")
    print("\n| keys | fine-tuning | lr (chosen on valid.txt) | perplexity, seeds 42 / 7 | KL | "
          "control perplexity | gap vs control | state |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for m in ("svd", "kqsvd"):
        c = runs.test_ppl(f"ft-{m}-post-q4")
        print(f"| {m} | none | | {c['ppl']:.2f} | {c['kl']:.4f} | | | done |" if c
              else f"| {m} | none | | - | - | | | {runs.state(f'ft-{m}-post-q4')} |")
        for loss in ("lm", "kd"):
            sweep = {}
            for d in sorted(os.listdir(runs.root)) if os.path.isdir(runs.root) else []:
                mm = re.fullmatch(rf"ft-sweep-{m}-{loss}-lr(.+)", d)
                if mm and runs.done(d):
                    e = load(os.path.join(runs.dir(d), "eval_valid.json"))
                    if e:
                        sweep[mm.group(1)] = e["perplexity"]
            lr = min(sweep, key=sweep.get) if sweep else None
            ppl, kl, ctl, gaps, states = [], [], [], [], []
            for s in (42, 7):
                r = runs.test_ppl(f"ft-{m}-{loss}-s{s}")
                cr = runs.test_ppl(f"ft-control-{loss}-lr{lr}-s{s}") if lr else None
                if r:
                    ppl.append(r["ppl"])
                    kl.append(r["kl"])
                else:
                    states.append(f"s{s}: {runs.state(f'ft-{m}-{loss}-s{s}')}")
                if cr:
                    ctl.append(cr["ppl"])
                    if r:
                        gaps.append(r["ppl"] / cr["ppl"] - 1)
            sweep_txt = ", ".join(f"{k}: {v:.2f}" for k, v in sorted(sweep.items()))
            print(f"| {m} | {loss}, 1M tokens | {lr or '-'} ({sweep_txt or 'sweep pending'}) | "
                  f"{spread(ppl)} | {' / '.join(f'{x:.4f}' for x in kl) or '-'} | {spread(ctl)} | "
                  f"{pct(gaps)} | {'; '.join(states) if states else 'done'} |")


def growth_verdict(label, mins):
    """How a minimum width grows from the smallest to the largest N with a value:
    against log2 N (x log2(N2)/log2(N1)) and against N (x N2/N1), nearer on a log scale."""
    known = [(n, v) for n, v in mins if v is not None and v != math.inf]
    beyond = [n for n, v in mins if v == math.inf]
    note = (f" (at N = {', '.join(map(str, beyond))} no swept width reached 95%)" if beyond else "")
    if len(known) < 2:
        return f"{label}: open (fewer than two N with a value){note}"
    (n1, v1), (n2, v2) = known[0], known[-1]
    ratio, by_log, by_n = v2 / v1, math.log2(n2) / math.log2(n1), n2 / n1
    near = ("log2 N" if abs(math.log(ratio) - math.log(by_log)) <= abs(math.log(ratio) - math.log(by_n))
            else "N")
    return (f"{label}: {v1} at N = {n1} to {v2} at N = {n2} (x{ratio:.2f}; log2 N predicts "
            f"x{by_log:.2f}, N predicts x{by_n:.0f}): nearer {near}{note}")


def item4(runs, ns=(8, 16, 32, 64), seeds=(42, 7)):
    print("\n### Item 4: retrieval among N, capacity apart from optimisation "
          "(4 layers, d_model 64, 4 heads of 16; threshold 95%; held-out sequences)\n")
    print("Accuracies are on held-out sequences that no run can have trained on "
          "(`selection --held-out`: a fixed 1-in-8 class of sequences by hash of their tokens is "
          "never drawn for training); widths are totals over the 4 heads, so a KQ-SVD rank r per "
          "head is 4r, comparable with d_select. Per seed: 42 / 7.\n")
    print("| N | log2 N | full width (d_select 64): held-out test accuracy (converge step) | "
          "smallest KQ-SVD key width after training (4 x rank/head) | "
          "smallest d_select from scratch (of 4, 8, 16, 32) | state |")
    print("|---:|---:|---|---|---|---|")
    kq_mins, ds_mins = [], []
    for n in ns:
        full, kq, thin, states = [], [], [], []
        kq_vals, ds_vals = [], []
        for s in seeds:
            for kind in ("full", "thin"):
                name = f"sel-{kind}-n{n}-s{s}"
                j = load(os.path.join(runs.dir(name), "selection.json")) if runs.done(name) else None
                if not j:
                    states.append(f"{kind} s{s}: {runs.state(name)}")
                    continue
                runs.record[name] = {"selection": j, "commands": runs.commands(name)}
                r = j["runs"][0]
                if not r.get("held_out"):
                    states.append(f"{kind} s{s}: not held out (old run; delete it to rerun)")
                if kind == "full":
                    conv = r["converge_step"] if r["converge_step"] is not None else "not converged"
                    k = r.get("kqsvd_search")
                    if k:
                        full.append(f"{100 * k['full_accuracy']:.1f}% ({conv})")
                        w = k["smallest_key_width_total"]
                        below = " (full width itself below 95%)" if k["full_accuracy"] < 0.95 else ""
                        kq.append((str(w) if w is not None else "none < 64") + below)
                        kq_vals.append(w if w is not None else math.inf)
                    else:
                        full.append(f"{100 * r['best_accuracy']:.1f}% best during training ({conv})")
                        kq.append("no search")
                        kq_vals.append(None)
                else:
                    sm = j["summary"][0]["smallest_d_select"]
                    thin.append(str(sm) if sm is not None else "none <= 32")
                    ds_vals.append(sm if sm is not None else math.inf)
        done_seeds = len(seeds)
        # The width both seeds need (the larger); None if any seed found none or is missing.
        kq_mins.append((n, max(kq_vals) if len(kq_vals) == done_seeds and None not in kq_vals else None))
        ds_mins.append((n, max(ds_vals) if len(ds_vals) == done_seeds and None not in ds_vals else None))
        print(f"| {n} | {math.log2(n):.0f} | {' / '.join(full) or '-'} | {' / '.join(kq) or '-'} | "
              f"{' / '.join(thin) or '-'} | {'; '.join(states) if states else 'done'} |")
    print("\nVerdict (the width both seeds need; d_select is swept in powers of two, so it "
          "resolves only doublings): " + growth_verdict("KQ-SVD after training", kq_mins) + "; "
          + growth_verdict("d_select from scratch", ds_mins) + ".")


def stage_figures(runs, name, stage):
    """(mean perplexity, mean KL or None) of ROOT/NAME/STAGE.json over its slices, or None."""
    e = load(os.path.join(runs.dir(name), stage + ".json"))
    if not e or "perplexity_over_slices" not in e:
        return None
    runs.record.setdefault(name, {"commands": runs.commands(name)})[stage] = e
    kl = e.get("kl_over_slices", {}).get("mean")
    return e["perplexity_over_slices"]["mean"], kl


def fig(f, base=None):
    """'ppl (+x.x%, KL k)' of stage_figures output."""
    if not f:
        return "-"
    ppl, kl = f
    rel = f", {100 * (ppl / base - 1):+.1f}%" if base else ""
    return f"{ppl:.2f} ({'KL %.4f' % kl if kl is not None else ''}{rel})"


def item7_grid(runs):
    base = runs.test_ppl("hd64")
    print("\n### Item 7: compression grid on the head_dim-64 model (hd64: 6 layers, width 384, "
          "6 query heads x 64, 2 KV heads, RoPE, SentencePiece 4,096, 12.3M tokens)\n")
    if not base:
        print(f"hd64 not finished ({runs.state('hd64')}); the grid waits for it.")
        return
    b = base["ppl"]
    k8, k4 = (stage_figures(runs, "hd64-cache", s) for s in ("eval_test_k8", "eval_test_k4"))
    print(f"Uncompressed test.txt perplexity {b:.2f}; its own int8 key cache {fig(k8)}, "
          f"int4 {fig(k4)}. f32 and fine-tuned cells: perplexity (KL against the uncompressed "
          "model, change in perplexity), 3 slices. int8 / int4 cells: perplexity on slice 0 "
          "without overlap (KL against the same compressed model with its f32 cache: what the "
          "quantized keys add), through the paged decode cache. Latent and post: one key space "
          "per layer (`--share layer`); pairs: per head. QK fine-tuning: distillation towards "
          "the uncompressed model, 1M tokens of train-01.txt, post rows only.\n")
    print("| method | rope | key ratio | key dims per key space (layer; pairs: per head) | KV bytes/token (f16) | f32 cache | "
          "int8 keys | int4 keys | after QK fine-tuning | state |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for m in ("svd", "kqsvd"):
        for rope in ("post", "latent", "pairs"):
            for q in (2, 4, 8):
                name = f"hd64-c-{m}-{rope}-q{q}"
                c = load(os.path.join(runs.dir(name), "compress.json"))
                ranks = c["ranks"][0] if c and c.get("ranks") else "-"
                kv = runs.kv_bytes(name) or "-"
                f32 = stage_figures(runs, name, "eval_test")
                quant = (m == "kqsvd" and rope != "pairs")
                c8 = fig(stage_figures(runs, name, "eval_test_k8")) if quant else ""
                c4 = fig(stage_figures(runs, name, "eval_test_k4")) if quant else ""
                ft_name = f"hd64-ft-{m}-post-q{q}"
                ft = fig(stage_figures(runs, ft_name, "eval_test"), b) if rope == "post" else ""
                states = [] if runs.done(name) else [runs.state(name)]
                if rope == "post" and not runs.done(ft_name):
                    states.append(f"fine-tuning: {runs.state(ft_name)}")
                print(f"| {m} | {rope} | 1/{q} | {ranks} | {kv} | {fig(f32, b)} | {c8} | {c4} | {ft} | "
                      f"{'; '.join(states) if states else 'done'} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", nargs="?", default="/work/runs/seed-claims")
    ap.add_argument("--json", help="also write every figure and its commands here")
    ap.add_argument("--bin", help="thinkeys binary for KV bytes (default ROOT/bin/thinkeys)")
    ap.add_argument("--doc", help="Markdown file whose marked tables section to replace")
    a = ap.parse_args()
    if not os.path.isdir(a.root):
        sys.exit(f"seed_claims_tables: no run directory {a.root}")
    binary = a.bin or os.path.join(a.root, "bin", "thinkeys")
    runs = Runs(a.root, binary if os.access(binary, os.X_OK) else None)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tables(runs)
    print(out.getvalue(), end="")
    if a.doc:
        replace_section(a.doc, out.getvalue())
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(runs.record, f, indent=1, sort_keys=True)
        os.replace(tmp, a.json)


BEGIN, END = "<!-- seed-claims tables -->", "<!-- end seed-claims tables -->"


def replace_section(path, text):
    with open(path) as f:
        doc = f.read()
    if doc.count(BEGIN) != 1 or doc.count(END) != 1 or doc.index(BEGIN) > doc.index(END):
        sys.exit(f"seed_claims_tables: {path} needs one '{BEGIN}' line before one '{END}' line")
    head, rest = doc.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(head + BEGIN + "\n" + text.strip("\n").replace("### ", "#### ") + "\n\n" + END + tail)
    os.replace(tmp, path)


def tables(runs):
    item2(runs, "1.5M")
    item3(runs)
    item5(runs)
    item4(runs)
    hd = runs.test_ppl("hd64")
    print(f"\n### Item 7: head_dim-64 model: "
          f"{'test.txt perplexity %.2f' % hd['ppl'] if hd else runs.state('hd64')}")
    item7_grid(runs)
    item2(runs, "12M")


if __name__ == "__main__":
    main()
