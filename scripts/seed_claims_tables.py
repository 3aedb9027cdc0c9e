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
]
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


def item4(runs):
    print("\n### Item 4: retrieval among N (4 layers, d_model 64; threshold 95%)\n")
    print("| N | log2 N | full width (d_select 64): best acc, converge step (seed 42 / 7) | "
          "smallest d_select from scratch (seed 42 / 7) | state |")
    print("|---:|---:|---|---|---|")
    for n in (8, 16, 32, 64):
        full, thin, states = [], [], []
        for s in (42, 7):
            for kind, acc in (("full", full), ("thin", thin)):
                name = f"sel-{kind}-n{n}-s{s}"
                j = load(os.path.join(runs.dir(name), "selection.json")) if runs.done(name) else None
                if not j:
                    states.append(f"{kind} s{s}: {runs.state(name)}")
                    continue
                runs.record[name] = {"selection": j, "commands": runs.commands(name)}
                if kind == "full":
                    r = j["runs"][0]
                    acc.append(f"{100 * r['best_accuracy']:.1f}%, "
                               f"{r['converge_step'] if r['converge_step'] is not None else 'not converged'}")
                else:
                    sm = j["summary"][0]["smallest_d_select"]
                    acc.append(str(sm) if sm is not None else "none <= 32")
        print(f"| {n} | {math.log2(n):.0f} | {' / '.join(full) or '-'} | {' / '.join(thin) or '-'} | "
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
    item2(runs, "12M")


if __name__ == "__main__":
    main()
