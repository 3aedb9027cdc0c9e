// The planner against the server (issue 19's cross-check): for stories260K
// and a 2 MiB cache, the number of sequences of L = 416 tokens that
// `thinkeys serve` runs at once without preemption must equal
//   (a) the number written here from the cache's layout formula, and
//   (b) what `thinkeys plan --json` predicts for the same budget, dtypes
//       and block size,
// and one more such sequence must wait. With admission on the prompt alone
// (--reserve-tokens 0) the same load runs more at once and preempts.
//
// Usage: node serve_capacity.mjs THINKEYS_BINARY SHARED_DIR ($THINKEYS_SHARED wins)
// Exit 77 (ctest: skipped) when the shared model is missing.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";
import { bounded, metrics, sleep, startServer, stopServer, serveTestArgs, step } from "./serve_harness.mjs";

const { binary, shared, model } = serveTestArgs("serve_capacity.mjs");
const watchdog = bounded(240);

// stories260K (llama2.c header): 5 layers, 8 query heads sharing 4 KV heads
// of width 8.
const LAYERS = 5, KV_HEADS = 4, HEAD = 8;
const BLOCK_TOKENS = 16, BUDGET = 2 * 1024 * 1024;
// A request of P prompt tokens and G max_tokens holds at most P + G - 1
// tokens in the cache: the last token sampled is never fed back.
const P = 320, G = 97, L = P + G - 1;

// The paged cache's layout (docs/design.md section 7): per layer and KV
// head, a block holds BLOCK_TOKENS key rows then BLOCK_TOKENS value rows,
// each run padded to a 64-byte cache line. A row is `width` values, plus
// for int8 one f16 scale per group of min(32, width) values.
const align64 = (n) => Math.ceil(n / 64) * 64;
const rowBytes = (dtype, width) =>
  ({ f32: 4 * width, f16: 2 * width, int8: width + 2 * Math.ceil(width / Math.min(32, width)) })[dtype];
function handDerived(cacheK, cacheV) {
  const run = (dtype) => align64(rowBytes(dtype, HEAD) * BLOCK_TOKENS);
  const blockBytes = LAYERS * KV_HEADS * (run(cacheK) + run(cacheV));
  const blocks = Math.floor(BUDGET / blockBytes);
  const perSequence = Math.ceil(L / BLOCK_TOKENS);
  return { blockBytes, blocks, perSequence, sequences: Math.floor(blocks / perSequence) };
}
// f16: (16 B x 16 = 256) x 2 x 4 heads x 5 layers = 10,240 B a block, 204
// blocks, 26 a sequence: 7 (182 blocks; an 8th would need 208).
assert.deepEqual(handDerived("f16", "f16"),
  { blockBytes: 10240, blocks: 204, perSequence: 26, sequences: 7 });
// int8 keys: 8 + 2 = 10 B a row, 160 B a run padded to 192: 8,960 B a block,
// 234 blocks = exactly 9 sequences.
assert.deepEqual(handDerived("int8", "f16"),
  { blockBytes: 8960, blocks: 234, perSequence: 26, sequences: 9 });

function planned(cacheK, cacheV) {
  const out = execFileSync(binary, [
    "plan", model, "--memory", "2MiB", "--weights", "none", "--reserve", "0",
    "--ctx", String(L), "--key-ratio", "1", "--cache-k", cacheK, "--cache-v", cacheV,
    "--block-tokens", String(BLOCK_TOKENS), "--json",
  ], { encoding: "utf8" });
  const plan = JSON.parse(out);
  assert.deepEqual([plan.layers, plan.kv_heads, plan.head_dim], [LAYERS, KV_HEADS, HEAD]);
  assert.equal(plan.contexts.length, 1);
  assert.equal(plan.contexts[0].rows.length, 1);
  return plan.contexts[0].rows[0];
}

// The prompt: P tokens of plain story text (BOS first), so that greedy
// decoding runs its G tokens without reaching end-of-text.
async function storyPrompt(base) {
  const text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ".repeat(12);
  const r = await fetch(`${base}/tokenize`, { method: "POST", body: JSON.stringify({ content: text }) });
  const { tokens } = await r.json();
  assert.ok(tokens.length >= P, `${tokens.length} tokens`);
  return [1, ...tokens.slice(0, P - 1)];
}

async function complete(base, prompt) {
  const r = await fetch(`${base}/v1/completions`, {
    method: "POST",
    body: JSON.stringify({ prompt, max_tokens: G, temperature: 0, stream: true }),
  });
  assert.equal(r.status, 200);
  const text = await r.text();
  assert.ok(text.endsWith("data: [DONE]\n\n"));
  const finish = [...text.matchAll(/"finish_reason":"([a-z]+)"/g)].map((m) => m[1]);
  assert.deepEqual(finish, ["length"],
    "every request must run its max_tokens, or it never reaches its L tokens");
}

// Sends `count` such requests at once and watches /metrics until it has seen
// `running` sequences running with `waiting` waiting, or all are done.
async function load(server, count, running, waiting) {
  const prompt = await storyPrompt(server.base);
  let seen = false;
  let done = false;
  const trace = [];  // running/waiting at each scrape, for the failure message
  const t0 = Date.now();
  const all = Promise.all(Array.from({ length: count }, () => complete(server.base, prompt)))
    .finally(() => { done = true; });
  while (!done) {
    const m = await metrics(server.base);
    const now = `${m.thinkeys_requests_running}/${m.thinkeys_requests_waiting}`;
    if (trace.at(-1)?.endsWith(` ${now}`) !== true) trace.push(`${Date.now() - t0}ms ${now}`);
    if (m.thinkeys_requests_running === running && m.thinkeys_requests_waiting === waiting) seen = true;
    await sleep(2);
  }
  await all;
  return { seen, trace: trace.join(", "), after: await metrics(server.base) };
}

const serveArgs = (cacheK, cacheV, extra = []) => [
  model, "--cache-mb", "2", "--cache-k", cacheK, "--cache-v", cacheV,
  "--block-tokens", String(BLOCK_TOKENS), "--max-batch", "32", "--quiet", ...extra,
];

for (const [cacheK, cacheV] of [["f16", "f16"], ["int8", "f16"]]) {
  const hand = handDerived(cacheK, cacheV);
  const N = hand.sequences;
  step(`K ${cacheK}, V ${cacheV}: plan says ${N} sequences of ${L} tokens, as derived by hand`);
  const row = planned(cacheK, cacheV);
  assert.equal(row.block_bytes, hand.blockBytes);
  assert.equal(row.blocks, hand.blocks);
  assert.equal(row.blocks_per_sequence, hand.perSequence);
  assert.equal(row.sequences, N);

  step(`the server holds ${N} without preemption; the ${N + 1}th waits`);
  const s = await startServer(binary, serveArgs(cacheK, cacheV, ["--prefill-chunk", "16"]));
  assert.match(s.log(), new RegExp(`in ${hand.blocks} blocks of ${BLOCK_TOKENS} tokens`));
  const start = await metrics(s.base);
  assert.equal(start.thinkeys_kv_blocks_total, hand.blocks);
  assert.equal(start.thinkeys_kv_bytes_total, hand.blocks * hand.blockBytes);
  const { seen, trace, after } = await load(s, N + 1, N, 1);
  assert.ok(seen, `never saw ${N} running and 1 waiting (running/waiting: ${trace})`);
  assert.equal(after.thinkeys_requests_running_peak, N);
  assert.equal(after.thinkeys_preemptions_total, 0);
  assert.equal(after.thinkeys_generation_tokens_total, (N + 1) * G);
  assert.equal(after.thinkeys_kv_blocks_used, 0);
  await stopServer(s);
}

step("admitting on the prompt alone runs more at once, and they preempt each other");
{
  // 20 prompt blocks each: ten fit the 204 blocks (200) on admission, but
  // one of them growing to its 26 blocks beside the nine others' prompts
  // already needs 206.
  const s = await startServer(binary, serveArgs("f16", "f16", ["--reserve-tokens", "0", "--prefill-chunk", "4096"]));
  const { after } = await load(s, 10, 10, 0);
  assert.ok(after.thinkeys_requests_running_peak > 7,
    `${after.thinkeys_requests_running_peak} ran at once; the prompts alone let all 10 in`);
  assert.ok(after.thinkeys_preemptions_total > 0, "sequences of 26 blocks cannot all share 204");
  assert.equal(after.thinkeys_generation_tokens_total, 10 * G);
  assert.equal(after.thinkeys_kv_blocks_used, 0);
  await stopServer(s);
}

clearTimeout(watchdog);
console.log("PASS");
