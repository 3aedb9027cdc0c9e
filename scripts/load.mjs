#!/usr/bin/env node
// A bounded load generator for `thinkeys serve` (or any OpenAI-compatible
// server that streams /v1/completions): C clients send R streamed requests
// in all, each with a prompt of P tokens and max_tokens G, and it reports
// per-request time to first token (TTFT) and inter-token latency (ITL)
// percentiles, aggregate generated tokens/s, and from the server's /metrics
// the most sequences running at once and the preemptions during the run.
//
// Usage: node scripts/load.mjs [--url http://127.0.0.1:8080] [--clients 64]
//   [--requests 256] [--prompt-tokens 256] [--max-tokens 128]
//   [--temperature 0.8] [--seed 1] [--api-key KEY] [--model NAME] [--json]
// Built-in Node modules only (fetch).
//
// The prompt is token ids (the same P for every request, a different
// sampling seed each): text from /tokenize, repeated to P tokens, so the
// server does no tokenizing in the measured path. A request can end early
// at an end-of-text token; the generated-token counts are the server's own
// (stream_options.include_usage).

const opt = {
  url: "http://127.0.0.1:8080", clients: 64, requests: 256, promptTokens: 256, maxTokens: 128,
  temperature: 0.8, seed: 1, apiKey: "", model: "", json: false,
};
{
  const names = {
    "--url": "url", "--clients": "clients", "--requests": "requests",
    "--prompt-tokens": "promptTokens", "--max-tokens": "maxTokens", "--temperature": "temperature",
    "--seed": "seed", "--api-key": "apiKey", "--model": "model",
  };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (a === "--json") opt.json = true;
    else if (a === "--help" || a === "-h") usage();
    else if (names[a] && i + 1 < argv.length) {
      const k = names[a];
      opt[k] = typeof opt[k] === "number" ? Number(argv[++i]) : argv[++i];
      if (typeof opt[k] === "number" && !Number.isFinite(opt[k])) usage(`${a} needs a number`);
    } else usage(`unknown or incomplete argument ${a}`);
  }
  if (!(opt.clients >= 1 && opt.requests >= 1 && opt.promptTokens >= 1 && opt.maxTokens >= 1))
    usage("--clients, --requests, --prompt-tokens and --max-tokens must be at least 1");
  opt.url = opt.url.replace(/\/$/, "");
}

function usage(why) {
  if (why) console.error(`load.mjs: ${why}`);
  console.error("usage: node scripts/load.mjs [--url URL] [--clients C] [--requests R] " +
    "[--prompt-tokens P] [--max-tokens G] [--temperature T] [--seed S] [--api-key KEY] " +
    "[--model NAME] [--json]");
  process.exit(why ? 2 : 0);
}

const headers = { "Content-Type": "application/json" };
if (opt.apiKey) headers.Authorization = `Bearer ${opt.apiKey}`;

async function metrics() {
  const r = await fetch(`${opt.url}/metrics`);
  if (!r.ok) throw new Error(`/metrics: HTTP ${r.status}`);
  const out = {};
  for (const line of (await r.text()).split("\n")) {
    const m = /^([a-z_]+) ([0-9.e+-]+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

async function promptIds() {
  const text = "Once upon a time, there was a little girl named Lily. She loved to play outside " +
    "in the sunshine with her friends, and every evening her mother told her a story. ";
  const r = await fetch(`${opt.url}/tokenize`, { method: "POST", headers, body: JSON.stringify({ content: text }) });
  if (!r.ok) throw new Error(`/tokenize: HTTP ${r.status} ${await r.text()}`);
  const { tokens } = await r.json();
  const ids = [];
  while (ids.length < opt.promptTokens) ids.push(...tokens);
  return ids.slice(0, opt.promptTokens);
}

// One streamed request: TTFT, the gaps between token events, tokens.
async function one(prompt, seed) {
  const body = {
    prompt, max_tokens: opt.maxTokens, temperature: opt.temperature, seed, stream: true,
    stream_options: { include_usage: true },
  };
  if (opt.model) body.model = opt.model;
  const t0 = performance.now();
  const r = await fetch(`${opt.url}/v1/completions`, { method: "POST", headers, body: JSON.stringify(body) });
  if (r.status !== 200) return { error: `HTTP ${r.status}: ${(await r.text()).slice(0, 200)}` };
  const decoder = new TextDecoder();
  let buf = "", ttft = null, last = null, tokens = null, error = null;
  const gaps = [];
  for await (const chunk of r.body) {
    const now = performance.now();
    buf += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, end);
      buf = buf.slice(end + 2);
      if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
      const j = JSON.parse(event.slice(6));
      if (j.error) error = j.error.message;
      if (j.usage) tokens = j.usage.completion_tokens;
      if (j.choices?.[0]?.text) {
        if (ttft === null) ttft = (now - t0) / 1000;
        else gaps.push((now - last) / 1000);
        last = now;
      }
    }
  }
  if (error) return { error };
  return { ttft, gaps, tokens: tokens ?? 0, seconds: (performance.now() - t0) / 1000 };
}

function percentile(xs, p) {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

const prompt = await promptIds();
const m0 = await metrics();
let peakRunning = 0, peakWaiting = 0, scraping = true;
const scraper = (async () => {
  while (scraping) {
    try {
      const m = await metrics();
      peakRunning = Math.max(peakRunning, m.thinkeys_requests_running ?? 0);
      peakWaiting = Math.max(peakWaiting, m.thinkeys_requests_waiting ?? 0);
    } catch {}
    await new Promise((r) => setTimeout(r, 50));
  }
})();

const results = [];
let next = 0, done = 0;
const start = performance.now();
const tty = process.stderr.isTTY && !opt.json;
const progress = tty ? setInterval(() => {
  const s = (performance.now() - start) / 1000;
  const rate = done / s;
  const eta = rate > 0 ? (opt.requests - done) / rate : 0;
  process.stderr.write(`\r${done}/${opt.requests} requests, ${rate.toFixed(2)}/s, ETA ${eta.toFixed(0)} s   `);
}, 500) : null;
await Promise.all(Array.from({ length: Math.min(opt.clients, opt.requests) }, async () => {
  for (;;) {
    const i = next++;
    if (i >= opt.requests) return;
    try {
      results.push(await one(prompt, opt.seed + i));
    } catch (e) {
      results.push({ error: String(e.message ?? e) });
    }
    ++done;
  }
}));
const wall = (performance.now() - start) / 1000;
if (progress) {
  clearInterval(progress);
  process.stderr.write("\n");
}
scraping = false;
await scraper;
const m1 = await metrics();

const ok = results.filter((r) => !r.error);
const ttfts = ok.map((r) => r.ttft).filter((x) => x !== null);
const itls = ok.flatMap((r) => r.gaps);
const tokens = ok.reduce((a, r) => a + r.tokens, 0);
const summary = {
  url: opt.url, clients: opt.clients, requests: opt.requests, prompt_tokens: opt.promptTokens,
  max_tokens: opt.maxTokens, temperature: opt.temperature,
  succeeded: ok.length, failed: results.length - ok.length,
  errors: [...new Set(results.filter((r) => r.error).map((r) => r.error))].slice(0, 5),
  wall_seconds: wall, generated_tokens: tokens, generated_tokens_per_second: tokens / wall,
  ttft_p50_s: percentile(ttfts, 50), ttft_p99_s: percentile(ttfts, 99),
  itl_p50_s: percentile(itls, 50), itl_p99_s: percentile(itls, 99),
  peak_running_scraped: peakRunning, peak_waiting_scraped: peakWaiting,
  // Server-side: the most running at once since the server started (exact,
  // not sampled), and what this run added to the counters.
  running_peak_since_start: m1.thinkeys_requests_running_peak ?? null,
  preemptions: (m1.thinkeys_preemptions_total ?? 0) - (m0.thinkeys_preemptions_total ?? 0),
  kv_blocks_total: m1.thinkeys_kv_blocks_total ?? null,
  kv_bytes_total: m1.thinkeys_kv_bytes_total ?? null,
};

if (opt.json) {
  console.log(JSON.stringify(summary, null, 2));
} else {
  const ms = (x) => (x === null ? "-" : (x * 1000).toFixed(1));
  const rows = [
    ["requests (ok / failed)", `${summary.succeeded} / ${summary.failed}`],
    ["clients", String(opt.clients)],
    ["prompt tokens, max_tokens", `${opt.promptTokens}, ${opt.maxTokens}`],
    ["wall time (s)", wall.toFixed(2)],
    ["generated tokens", String(tokens)],
    ["generated tokens/s", summary.generated_tokens_per_second.toFixed(1)],
    ["TTFT p50 / p99 (ms)", `${ms(summary.ttft_p50_s)} / ${ms(summary.ttft_p99_s)}`],
    ["ITL p50 / p99 (ms)", `${ms(summary.itl_p50_s)} / ${ms(summary.itl_p99_s)}`],
    ["running at once (peak, server)", String(summary.running_peak_since_start ?? "-")],
    ["waiting (peak, scraped)", String(peakWaiting)],
    ["preemptions", String(summary.preemptions)],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
  for (const e of summary.errors) console.log(`error: ${e}`);
}
process.exit(summary.failed > 0 ? 1 : 0);
