#!/usr/bin/python3
"""Tables of docs/results/capacity.md and docs/results/data/capacity.tsv, from
`thinkeys plan --json` (nothing else is computed here: every figure is the
planner's). Run from the repository root after building thinkeys:

    /usr/bin/python3 scripts/capacity_tables.py > /tmp/capacity_tables.md
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TK = os.path.join(ROOT, "build", "thinkeys")
CONFIGS = os.path.join("tests", "data", "configs")
MODELS = [("Llama-2-7B", "llama-2-7b.json"), ("Llama-3-8B", "llama-3-8b.json"),
          ("Mistral-7B-v0.1", "mistral-7b-v0.1.json"), ("Llama-2-70B", "llama-2-70b.json")]
MEMORIES = ["24GiB", "80GB", "8x80GB"]
CTX = "4096,32768,131072"
COMMANDS = []


def plan(args):
    cmd = [TK, "plan"] + args + ["--json"]
    COMMANDS.append("build/thinkeys plan " + " ".join(args))
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def rows_by(j, ctx):
    for t in j["contexts"]:
        if t["ctx"] == ctx:
            return {(r["keys"].split()[0], r["key_dtype"]): r for r in t["rows"]}
    raise KeyError(ctx)


def gb(b):
    return "%.1f GB" % (b / 1e9) if b >= 1e9 else "%.0f MB" % (b / 1e6)


def main():
    out = sys.stdout
    cols = [("full", "f16"), ("d/4", "f16"), ("full", "int4"), ("d/4", "int4")]
    # Summary: sequences that fit, per model, memory and context.
    out.write("| model | memory | weights (as stored) | KV budget | 4K | 32K | 128K |\n")
    out.write("|---|---|---|---|---|---|---|\n")
    details = {}
    for name, cfg in MODELS:
        for mem in MEMORIES:
            args = [os.path.join(CONFIGS, cfg), "--memory", mem, "--ctx", CTX,
                    "--key-ratio", "1,0.5,0.25,0.125", "--cache-k", "f16,int8,int4"]
            try:
                j = plan(args)
            except subprocess.CalledProcessError as e:
                msg = e.stderr.strip().replace("error: ", "")
                out.write("| %s | %s | | does not fit: %s | | | |\n" % (name, mem, msg))
                continue
            details[(name, mem)] = j
            cells = []
            for ctx in (4096, 32768, 131072):
                r = rows_by(j, ctx)
                star = "*" if ctx > j["max_positions"] else ""
                cells.append(" · ".join(str(r[c]["sequences"]) for c in cols) + star)
            out.write("| %s | %s | %s | %s | %s |\n" % (
                name, mem, gb(j["weight_bytes"]), gb(j["cache_budget_bytes"]), " | ".join(cells)))
    out.write("\n\n")
    # Per model: bytes per token and per sequence (independent of memory).
    for name, cfg in MODELS:
        j = details.get((name, "80GB")) or details.get((name, "8x80GB"))
        out.write("#### %s (%d layers, %d KV heads x %d)\n\n" % (
            name, j["layers"], j["kv_heads"], j["head_dim"]))
        out.write("| keys | K | K B/token | V B/token | per sequence 4K | 32K | 128K | vs full f16 |\n")
        out.write("|---|---|---|---|---|---|---|---|\n")
        first = j["contexts"][0]["rows"]
        for i, r in enumerate(first):
            per = [j["contexts"][k]["rows"][i]["bytes_per_sequence"] for k in range(3)]
            out.write("| %s | %s | %d | %d | %s | %s | %s | %.3f |\n" % (
                r["keys"], r["key_dtype"], r["key_bytes_per_token"], r["value_bytes_per_token"],
                gb(per[0]), gb(per[1]), gb(per[2]), r["ratio_to_full_f16"]))
        out.write("\n")
    # The plot's data: Llama-3-8B at 32K, cache budget alone (no weights, no reserve).
    series = [("full", "f16"), ("full", "int8"), ("full", "int4"), ("d/4", "f16"), ("d/4", "int4")]
    lines = ["# Llama-3-8B, 32768-token sequences held in a KV cache budget of N GiB",
             "# (scripts/capacity_tables.py: thinkeys plan tests/data/configs/llama-3-8b.json "
             "--memory NGiB --weights none --reserve 0 --ctx 32768 --key-ratio 1,0.25 "
             "--cache-k f16,int8,int4 --json)",
             "\t".join(["budget_GiB"] + ["%s-%s" % s for s in series])]
    for gib in (8, 16, 24, 32, 48, 64, 80):
        j = plan([os.path.join(CONFIGS, "llama-3-8b.json"), "--memory", "%dGiB" % gib,
                  "--weights", "none", "--reserve", "0", "--ctx", "32768", "--key-ratio", "1,0.25",
                  "--cache-k", "f16,int8,int4"])
        r = rows_by(j, 32768)
        lines.append("\t".join([str(gib)] + [str(r[s]["sequences"]) for s in series]))
    with open(os.path.join(ROOT, "docs", "results", "data", "capacity.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    out.write("\nCommands run:\n\n```sh\n" + "\n".join(COMMANDS) + "\n```\n")


if __name__ == "__main__":
    main()
