#!/usr/bin/env node
// The server under faults: drives `thinkeys serve` on loopback with many
// concurrent clients while the KV cache budget is oversubscribed (so requests
// queue and get preempted), some requests are malformed and some clients hang
// up mid-stream. Afterwards it checks that
//   - the server did not crash and still answers (/health, and requests
//     replayed alone give the reference text),
//   - every malformed request got a 4xx with OpenAI's error JSON,
//   - every valid greedy request's text (and finish reason) equals the same
//     request served alone by a fresh server with a roomy cache,
//   - /metrics shows every KV block back in the pool and nothing running or
//     waiting,
//   - the resident memory (VmRSS) after the run is within --rss-margin of
//     after a warm-up run of the same mix,
//   - SIGTERM stops it with exit 0.
// Exits 1 on any violation, 77 (ctest: skipped) when the model is missing.
// The cache is f16 by default, as the server's: prefill chunk boundaries do
// not depend on load, so its rounding is the same under load as alone.
//
// Usage: node scripts/serve_faults.mjs [--requests 2000] [--concurrency 64]
//   [--oversubscribe 4] [--seed 1] [--rss-margin 0.10] [--binary build/thinkeys]
//   [--model PATH] [--cache-dtype f16] [--prefill-chunk 128] [--skip-rss] [--json]
// --skip-rss is for sanitizer builds, whose allocator keeps freed memory in
// a quarantine, so resident memory says nothing about leaks there (the leak
// checker at exit does).
// Built-in Node modules only (fetch, net); no npm packages needed (the helpers
// shared with the serve tests, tests/node/serve_harness.mjs, use none either).
import { spawn, execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, metrics, sleep } from "../tests/node/serve_harness.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const opt = {
  requests: 2000,
  concurrency: 64,
  oversubscribe: 4,
  seed: 1,
  rssMargin: 0.1,
  binary: path.join(root, "build/thinkeys"),
  model: null,
  json: false,
  skipRss: false,  // sanitizer builds: the allocator's quarantine holds freed memory
  timeout: 3600,
  cacheDtype: "f16",
  prefillChunk: 128,
};
{
  const argv = process.argv.slice(2);
  const names = {
    "--requests": "requests", "--concurrency": "concurrency", "--oversubscribe": "oversubscribe",
    "--seed": "seed", "--rss-margin": "rssMargin", "--binary": "binary", "--model": "model",
    "--timeout": "timeout", "--cache-dtype": "cacheDtype", "--prefill-chunk": "prefillChunk",
  };
  for (let i = 0; i < argv.length; ++i) {
    const a = argv[i];
    if (a === "--json") opt.json = true;
    else if (a === "--skip-rss") opt.skipRss = true;
    else if (names[a] && i + 1 < argv.length) {
      const k = names[a];
      opt[k] = typeof opt[k] === "number" ? Number(argv[++i]) : argv[++i];
      if (typeof opt[k] === "number" && !Number.isFinite(opt[k])) usage(`${a} needs a number`);
    } else usage(`unknown argument ${a}`);
  }
}
function usage(msg) {
  console.error(`serve_faults: ${msg}\nusage: node scripts/serve_faults.mjs [--requests N] ` +
    "[--concurrency C] [--oversubscribe X] [--seed S] [--rss-margin F] [--binary PATH] " +
    "[--model PATH] [--timeout SECONDS] [--skip-rss] [--json]");
  process.exit(2);
}
if (opt.requests < 20 || opt.concurrency < 1 || opt.oversubscribe <= 0) usage("bad numbers");
const shared = process.env.THINKEYS_SHARED || path.join(root, "../shared");
opt.model ??= path.join(shared, "models/stories260K/stories260K.bin");
if (!existsSync(opt.binary)) usage(`no binary at ${opt.binary} (build it, or pass --binary)`);
if (!existsSync(opt.model)) {
  console.log(`SKIP: ${opt.model} not found (set THINKEYS_SHARED)`);
  process.exit(77);
}

const KEY = "faults-key";
const log = (s) => { if (!opt.json) console.log(s); };
const children = new Set();
process.on("exit", () => { for (const c of children) c.kill("SIGKILL"); });
for (const ev of ["uncaughtException", "unhandledRejection"])
  process.on(ev, (e) => { console.error("FAIL: script error:", e); process.exit(1); });
setTimeout(() => {
  console.error(`FAIL: the run took longer than ${opt.timeout} s`);
  process.exit(1);
}, opt.timeout * 1000).unref();

// Deterministic randomness: the same seed gives the same requests.
function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  next.int = (lo, hi) => lo + Math.floor(next() * (hi - lo + 1));  // inclusive
  next.pick = (xs) => xs[Math.floor(next() * xs.length)];
  next.shuffle = (xs) => {
    for (let i = xs.length - 1; i > 0; --i) {
      const j = Math.floor(next() * (i + 1));
      [xs[i], xs[j]] = [xs[j], xs[i]];
    }
    return xs;
  };
  return next;
}

// ---------------------------------------------------------------------------
// The model's limits, from `thinkeys info` (not from the server under test).
const info = JSON.parse(execFileSync(opt.binary, ["info", opt.model, "--json"], { encoding: "utf8" }));
const CTX = info.ctx;
const VOCAB = info.vocab_size;
const BLOCK = 16;

// ---------------------------------------------------------------------------
// Servers.
async function startServer(extra) {
  const port = await freePort();
  const args = ["serve", opt.model, "--host", "127.0.0.1", "--port", String(port), "--api-key",
    KEY, "--model-name", "m", "--chat-template", "chatml", "--block-tokens", String(BLOCK),
    "--ctx", String(CTX), "--cache-k", opt.cacheDtype, "--cache-v", opt.cacheDtype,
    "--threads", "1", "--drain-seconds", "5", "-q", ...extra];
  const child = spawn(opt.binary, args, { stdio: ["ignore", "ignore", "pipe"] });
  children.add(child);
  let stderr = "";
  child.stderr.on("data", (d) => { stderr = (stderr + d).slice(-20000); });
  child.exited = new Promise((r) => child.on("exit", (code, signal) => r({ code, signal })));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`server exited early:\n${stderr}`);
    try {
      if ((await fetch(`${base}/health`)).status === 200) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`no /health within 60 s:\n${stderr}`);
    await sleep(50);
  }
  return { child, base, port, args, stderr: () => stderr };
}

async function stopServer(s) {
  s.child.kill("SIGTERM");
  const r = await Promise.race([s.child.exited, sleep(30_000).then(() => null)]);
  children.delete(s.child);
  if (!r) {
    s.child.kill("SIGKILL");
    return "did not exit within 30 s of SIGTERM";
  }
  if (r.signal !== null || r.code !== 0)
    return `exit after SIGTERM: code ${r.code} signal ${r.signal}\n${s.stderr()}`;
  return null;
}

function rssKiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m[1]);
}

// Waits until nothing runs, waits or holds a block (cancelled sequences free
// their blocks at the scheduler's next iteration); returns the last metrics.
async function quiesce(base, seconds = 30) {
  const deadline = Date.now() + seconds * 1000;
  let m;
  for (;;) {
    m = await metrics(base);
    const idle = m.thinkeys_requests_running === 0 && m.thinkeys_requests_waiting === 0 &&
      m.thinkeys_kv_blocks_used === 0;
    if (idle || Date.now() > deadline) return { idle, m };
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------
// Requests. A valid request is greedy (temperature 0), so its text is a
// function of the request alone; each distinct one is sent several times,
// streamed or not, and compared with the reference.
const WORDS = ("once upon a time there was a little girl named Lily she liked to play in the " +
  "park with her dog Max one day they saw a big red ball and ran to get it the sun was warm " +
  "and happy Tom said hello mom bird tree water cake friend").split(" ");

function makeValid(r, i) {
  const text = (lo, hi) => Array.from({ length: r.int(lo, hi) }, () => r.pick(WORDS)).join(" ");
  const body = { model: r() < 0.5 ? "m" : undefined, temperature: 0 };
  let route = "/v1/completions";
  const u = r();
  if (u < 0.3) {
    body.prompt = text(1, 60);
  } else if (u < 0.85) {
    // Token prompts from one token to the context limit; a quarter within
    // 48 tokens of it (max_tokens is then cut to what the context leaves).
    const n = r() < 0.25 ? r.int(CTX - 48, CTX - 1) : r.int(1, CTX >> 1);
    body.prompt = Array.from({ length: n }, () => r.int(0, VOCAB - 1));
  } else {
    route = "/v1/chat/completions";
    body.messages = [{ role: "user", content: text(1, 40) }];
    if (r() < 0.4) body.messages.unshift({ role: "system", content: text(1, 20) });
  }
  if (r() < 0.9) body.max_tokens = r.int(1, 64);  // unset: completions 16, chat to the end
  else if (route === "/v1/chat/completions") body.max_tokens = r.int(1, 64);
  if (r() < 0.1) body.stop = [r.pick(["Lily", ".", "the", "\n"])];
  if (r() < 0.1) {
    if (route === "/v1/completions") body.logprobs = r.int(0, 3);
    else Object.assign(body, { logprobs: true, top_logprobs: r.int(0, 3) });
  }
  // Fields the server does not know are ignored, as OpenAI-compatible servers
  // do for clients that send e.g. "user" or "metadata".
  if (r() < 0.1) Object.assign(body, { user: `client-${i}`, metadata: { run: "faults" } });
  return { kind: "valid", id: i, route, body };
}

// Malformed requests: each must get one of `expect` (4xx) with an error JSON.
function makeMalformed(r) {
  const p = { prompt: "Once upon a time", max_tokens: 4, temperature: 0 };
  const chat = { messages: [{ role: "user", content: "hi" }], max_tokens: 4 };
  const cases = [
    // Not JSON.
    () => ({ sub: "bad_json", body: '{"prompt": "Once upon' }),
    () => ({ sub: "bad_json", body: "{prompt: 1}" }),
    () => ({ sub: "bad_json", body: '{"prompt":"x",}' }),
    () => ({ sub: "bad_json", body: "" }),
    () => ({ sub: "bad_json", body: "[".repeat(r.int(1000, 100000)) }),
    () => ({ sub: "bad_json", body: Buffer.concat([Buffer.from('{"prompt":"'),
      Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')]) }),
    () => ({ sub: "bad_json", route: "/tokenize", body: '{"content": ' }),
    // JSON but not an object.
    () => ({ sub: "not_object", body: r.pick(["[1,2,3]", '"hello"', "null", "42", "true"]) }),
    () => ({ sub: "not_object", route: "/v1/chat/completions", body: "[]" }),
    // Wrong types.
    ...[["max_tokens", "ten"], ["temperature", "hot"], ["top_p", [1]], ["prompt", 12],
      ["prompt", [1.5, 2]], ["prompt", [-1]], ["prompt", []], ["stream", "yes"], ["stop", 5],
      ["seed", "x"], ["logprobs", true], ["model", 7], ["prompt", { a: 1 }]]
      .map(([k, v]) => () => ({ sub: "wrong_type", body: JSON.stringify({ ...p, [k]: v }) })),
    ...[["messages", "hi"], ["messages", []], ["messages", [{ role: "wizard", content: "x" }]],
      ["messages", [{ role: "user" }]], ["messages", [{ role: "user", content: 5 }]],
      ["messages", [{ role: "user", content: [{ type: "image_url", image_url: {} }] }]],
      ["top_logprobs", 2]]
      .map(([k, v]) => () => ({ sub: "wrong_type", route: "/v1/chat/completions",
        body: JSON.stringify({ ...chat, [k]: v }) })),
    () => ({ sub: "wrong_type", route: "/tokenize", body: JSON.stringify({ content: 5 }) }),
    () => ({ sub: "wrong_type", route: "/detokenize", body: JSON.stringify({ tokens: "abc" }) }),
    () => ({ sub: "wrong_type", body: JSON.stringify({ ...p, stream_options: { include_usage: true } }) }),
    // Out of range.
    ...[["temperature", 5], ["max_tokens", -1], ["max_tokens", 2 ** 31], ["top_p", 0],
      ["logprobs", 50], ["prompt", [VOCAB + 7]]]
      .map(([k, v]) => () => ({ sub: "out_of_range", body: JSON.stringify({ ...p, [k]: v }) })),
    () => ({ sub: "out_of_range", route: "/detokenize", body: JSON.stringify({ tokens: [VOCAB] }) }),
    // Prompts over the context limit.
    () => ({ sub: "too_long", body: JSON.stringify({ ...p,
      prompt: Array.from({ length: r.int(CTX, CTX + 200) }, () => r.int(0, VOCAB - 1)) }) }),
    () => ({ sub: "too_long", body: JSON.stringify({ ...p, prompt: "a b c d ".repeat(CTX) }) }),
    // OpenAI fields this server refuses by name.
    ...[["tools", [{ type: "function", function: { name: "f" } }]], ["logit_bias", { 5: 10 }],
      ["n", 2], ["suffix", "x"], ["echo", true], ["presence_penalty", 0.5],
      ["response_format", { type: "json_object" }], ["best_of", 3]]
      .map(([k, v]) => () => ({ sub: "unsupported_field", body: JSON.stringify({ ...p, [k]: v }) })),
    // Another model's name, no key, a wrong key.
    () => ({ sub: "wrong_model", body: JSON.stringify({ ...p, model: "gpt-9" }), expect: [404] }),
    () => ({ sub: "auth", body: JSON.stringify(p), headers: { Authorization: "" }, expect: [401] }),
    () => ({ sub: "auth", body: JSON.stringify(p), headers: { Authorization: "Bearer nope" },
      expect: [401] }),
    // Larger than the 8 MiB body limit.
    () => ({ sub: "oversized", body: JSON.stringify({ ...p, prompt: "x".repeat(r.int(9, 12) << 20) }),
      expect: [413] }),
    // Routes and methods that do not exist.
    ...[["POST", "/v1/nothing"], ["GET", "/v1/engines"], ["PUT", "/v1/completions"],
      ["DELETE", "/v1/completions"], ["GET", "/v1/completions"], ["POST", "/v1/embeddings"],
      ["POST", "/v1/chat/completions/x"]]
      .map(([method, route]) => () => ({ sub: "unknown_route", method, route,
        body: method === "GET" ? undefined : JSON.stringify(p), expect: [404] })),
    // Broken HTTP itself, on a raw socket.
    () => ({ sub: "raw_http", raw: "GARBAGE\r\n\r\n", expect: [400] }),
    () => ({ sub: "raw_http", raw: `GET /${"a".repeat(r.int(9000, 30000))} HTTP/1.1\r\nHost: x\r\n\r\n`,
      expect: [414] }),
    () => ({ sub: "raw_http", raw: "POST /v1/completions HTTP/1.1\r\nHost: x\r\n" +
      "Transfer-Encoding: chunked\r\n\r\nzz\r\n", expect: [400] }),
  ];
  const c = r.pick(cases)();
  return { kind: "malformed", route: "/v1/completions", method: "POST", expect: [400], ...c };
}

// Clients that hang up: streams cut after k events (0: right after the
// response headers), or requests abandoned before any answer.
function makeDisconnect(r) {
  const body = { model: "m", max_tokens: r.int(64, 400), temperature: r() < 0.5 ? 0 : 0.9,
    seed: r.int(0, 1e6), stream: true,
    prompt: r() < 0.5 ? "Once upon a time" : Array.from({ length: r.int(1, CTX - 70) },
      () => r.int(0, VOCAB - 1)) };
  return r() < 0.2
    ? { kind: "disconnect", sub: "before_answer", route: "/v1/completions", body, afterMs: r.int(0, 40) }
    : { kind: "disconnect", sub: "mid_stream", route: "/v1/completions", body, afterEvents: r.int(0, 6) };
}

function plan(n, r, distinct) {
  const nBad = Math.round(n / 10), nGone = Math.round(n / 10);
  const xs = [];
  for (let i = 0; i < nBad; ++i) xs.push(makeMalformed(r));
  for (let i = 0; i < nGone; ++i) xs.push(makeDisconnect(r));
  for (let i = 0; i < n - nBad - nGone; ++i) {
    const v = distinct[r.int(0, distinct.length - 1)];
    xs.push({ ...v, stream: r() < 0.5, usage: r() < 0.5 });
  }
  return r.shuffle(xs);
}

// ---------------------------------------------------------------------------
// Clients.
const authHeaders = { "Content-Type": "application/json", Authorization: `Bearer ${KEY}` };

// Reads a server-sent event stream; calls onEvent(json) per data event and
// returns whether [DONE] arrived.
async function readSse(res, onEvent) {
  const dec = new TextDecoder();
  let buf = "", done = false;
  for await (const chunk of res.body) {
    buf += dec.decode(chunk, { stream: true });
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!ev.startsWith("data: ")) continue;  // ": ping"
      const data = ev.slice(6);
      if (data === "[DONE]") done = true;
      else if (onEvent(JSON.parse(data)) === false) return done;
    }
  }
  return done;
}

// One valid request; returns { text, finish, promptTokens, completionTokens }.
async function runValid(base, q) {
  const body = { ...q.body };
  if (q.stream) {
    body.stream = true;
    if (q.usage) body.stream_options = { include_usage: true };
  }
  const res = await fetch(base + q.route, { method: "POST", headers: authHeaders,
    body: JSON.stringify(body) });
  if (res.status !== 200) {
    const t = await res.text();
    throw new Error(`HTTP ${res.status}: ${t.slice(0, 300)}`);
  }
  const chat = q.route === "/v1/chat/completions";
  if (!q.stream) {
    const j = await res.json();
    const c = j.choices[0];
    return { text: chat ? c.message.content : c.text, finish: c.finish_reason,
      promptTokens: j.usage.prompt_tokens, completionTokens: j.usage.completion_tokens };
  }
  let text = "", finish = null, usage = null, error = null;
  const done = await readSse(res, (j) => {
    if (j.error) error = j.error;
    if (j.usage) usage = j.usage;
    for (const c of j.choices ?? []) {
      text += (chat ? c.delta?.content : c.text) ?? "";
      if (c.finish_reason) finish = c.finish_reason;
    }
  });
  if (error) throw new Error(`error event: ${JSON.stringify(error)}`);
  if (!done) throw new Error("the stream ended without [DONE]");
  if (q.usage && !usage) throw new Error("no usage chunk");
  return { text, finish, promptTokens: usage?.prompt_tokens, completionTokens: usage?.completion_tokens };
}

function checkErrorJson(status, contentType, text) {
  if (status < 400 || status > 499) return `status ${status} is not a 4xx`;
  if (!/^application\/json/.test(contentType ?? "")) return `content-type ${contentType}`;
  let j;
  try {
    j = JSON.parse(text);
  } catch {
    return `body is not JSON: ${text.slice(0, 80)}`;
  }
  const e = j?.error;
  if (!e || typeof e.message !== "string" || typeof e.type !== "string" || !("param" in e) ||
      !("code" in e))
    return `not OpenAI's error shape: ${text.slice(0, 120)}`;
  return null;
}

// A raw HTTP exchange: sends bytes, reads one response (status, headers, body).
function rawExchange(port, bytes) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => s.write(bytes));
    let buf = Buffer.alloc(0);
    const finish = (v) => { s.destroy(); resolve(v); };
    s.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      const text = buf.toString("latin1");
      const h = text.indexOf("\r\n\r\n");
      if (h < 0) return;
      const len = Number(/content-length:\s*(\d+)/i.exec(text.slice(0, h))?.[1] ?? 0);
      if (buf.length >= h + 4 + len) {
        finish({ status: Number(text.slice(9, 12)),
          contentType: /content-type:\s*([^\r]+)/i.exec(text.slice(0, h))?.[1],
          body: buf.subarray(h + 4, h + 4 + len).toString("utf8") });
      }
    });
    s.on("error", (e) => finish({ error: e.code }));
    s.on("close", () => finish({ error: "closed without a response" }));
    setTimeout(() => finish({ error: "no response within 30 s" }), 30_000);
  });
}

async function runMalformed(server, q) {
  let status, contentType, body;
  if (q.raw) {
    const r = await rawExchange(server.port, q.raw);
    if (r.error) return { status: "no-response", problem: r.error };
    ({ status, contentType, body } = r);
  } else {
    const headers = { ...authHeaders, ...(q.headers ?? {}) };
    if (headers.Authorization === "") delete headers.Authorization;
    const res = await fetch(server.base + q.route, { method: q.method, headers, body: q.body });
    status = res.status;
    contentType = res.headers.get("content-type");
    body = await res.text();
  }
  let problem = checkErrorJson(status, contentType, body);
  if (!problem && !q.expect.includes(status)) problem = `expected ${q.expect.join("/")}, got ${status}`;
  return { status, problem };
}

async function runDisconnect(base, q) {
  const ac = new AbortController();
  let events = 0, outcome = "aborted";
  try {
    if (q.sub === "before_answer") setTimeout(() => ac.abort(), q.afterMs);
    const res = await fetch(base + q.route, { method: "POST", headers: authHeaders,
      body: JSON.stringify(q.body), signal: ac.signal });
    if (res.status !== 200) return { outcome: `HTTP ${res.status}`, problem: `HTTP ${res.status}` };
    if (q.sub === "mid_stream" && q.afterEvents === 0) ac.abort();
    const done = await readSse(res, () => ++events < q.afterEvents || q.sub !== "mid_stream");
    if (done) outcome = "finished first";
    ac.abort();
  } catch (e) {
    if (!ac.signal.aborted) return { outcome: "error", problem: String(e) };
  }
  return { outcome };
}

// Runs `queue` with `concurrency` workers; returns per-request results.
async function drive(server, queue, reference, concurrency, tally) {
  let next = 0;
  const worker = async () => {
    while (next < queue.length) {
      const q = queue[next++];
      const key = q.kind === "valid" ? "valid" : `${q.kind}:${q.sub}`;
      tally.kinds[key] = (tally.kinds[key] ?? 0) + 1;
      try {
        if (q.kind === "valid") {
          const got = await runValid(server.base, q);
          tally.status["200"] = (tally.status["200"] ?? 0) + 1;
          const want = reference.get(q.id);
          if (got.text !== want.text || got.finish !== want.finish ||
              (got.promptTokens !== undefined && got.promptTokens !== want.promptTokens)) {
            tally.mismatches.push({ id: q.id, stream: q.stream, route: q.route, got, want });
          }
          tally.validChecked++;
        } else if (q.kind === "malformed") {
          const r = await runMalformed(server, q);
          tally.status[r.status] = (tally.status[r.status] ?? 0) + 1;
          if (r.problem) tally.violations.push(`malformed ${q.sub} ${q.method} ${q.route}: ${r.problem}`);
        } else {
          const r = await runDisconnect(server.base, q);
          tally.disconnects[r.outcome] = (tally.disconnects[r.outcome] ?? 0) + 1;
          if (r.problem) tally.violations.push(`disconnect ${q.sub}: ${r.problem}`);
        }
      } catch (e) {
        tally.violations.push(`${key} request failed: ${e.message ?? e}`);
      }
      tally.done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

function newTally() {
  return { kinds: {}, status: {}, disconnects: {}, mismatches: [], violations: [], validChecked: 0,
    done: 0 };
}

// ---------------------------------------------------------------------------
const t0 = Date.now();
const r = rng(opt.seed);
const nValid = opt.requests - 2 * Math.round(opt.requests / 10);
const distinct = Array.from({ length: Math.max(10, Math.round(nValid / 4)) }, (_, i) => makeValid(r, i));
// The warm-up is long enough for the server's memory to settle: every HTTP
// thread's stack and malloc arena touched, the pool's blocks all used.
const warmN = Math.max(4 * opt.concurrency, Math.round(opt.requests / 4));
const warmQueue = plan(warmN, r, distinct);
const mainQueue = plan(opt.requests, r, distinct);
const violations = [];

// 1. The reference: each distinct request alone on a fresh server whose cache
// holds many whole contexts, one request at a time.
log(`reference: ${distinct.length} distinct greedy requests, one at a time`);
const refServer = await startServer(["--cache-mb", "64", "--max-batch", "4", "--max-queue", "4",
  "--prefill-chunk", String(opt.prefillChunk)]);
const reference = new Map();
for (const q of distinct) reference.set(q.id, await runValid(refServer.base, { ...q, stream: false }));
const refMetrics = await metrics(refServer.base);
const blockBytes = refMetrics.thinkeys_kv_bytes_total / refMetrics.thinkeys_kv_blocks_total;
{
  const e = await stopServer(refServer);
  if (e) violations.push(`reference server: ${e}`);
}

// 2. The pool: `concurrency` requests of the valid mix would hold
// `oversubscribe` times what it has (their peak is prompt + generated - 1).
const peakOf = (q) => {
  const w = reference.get(q.id);
  return w.promptTokens + Math.max(w.completionTokens - 1, 0);
};
const validMain = mainQueue.filter((q) => q.kind === "valid");
const meanPeak = validMain.reduce((a, q) => a + peakOf(q), 0) / validMain.length;
const poolBlocks = Math.max(Math.ceil(CTX / BLOCK), Math.ceil(opt.concurrency * meanPeak /
  opt.oversubscribe / BLOCK));
const cacheMb = ((poolBlocks + 0.5) * blockBytes) / (1 << 20);
// --reserve-tokens 0: admission on the prompt alone (the server's default
// reserves each request's growth and never preempts), so the oversubscribed
// pool really preempts and recomputes under the faults.
const server = await startServer(["--cache-mb", cacheMb.toFixed(6), "--reserve-tokens", "0", "--max-batch",
  String(opt.concurrency), "--max-queue", String(2 * opt.concurrency), "--prefill-chunk", String(opt.prefillChunk)]);
const pid = server.child.pid;
const m0 = await metrics(server.base);
const pool = m0.thinkeys_kv_blocks_total;
const oversub = (opt.concurrency * meanPeak) / (pool * BLOCK);
const rssStart = rssKiB(pid);
log(`server: pool ${pool} blocks of ${BLOCK} tokens (${pool * BLOCK} tokens); ${opt.concurrency} ` +
  `clients x mean peak ${meanPeak.toFixed(0)} tokens = ${oversub.toFixed(2)}x the pool; ` +
  `RSS at start ${(rssStart / 1024).toFixed(1)} MiB`);

// 3. Warm-up with the same mix, then the run.
const warm = newTally();
await drive(server, warmQueue, reference, opt.concurrency, warm);
let q = await quiesce(server.base);
if (!q.idle) violations.push(`after warm-up not idle: ${JSON.stringify(q.m)}`);
const rssWarm = rssKiB(pid);
log(`warm-up: ${warmN} requests; RSS ${(rssWarm / 1024).toFixed(1)} MiB`);
violations.push(...warm.violations.map((v) => `warm-up: ${v}`));
for (const mm of warm.mismatches) violations.push(`warm-up mismatch: ${JSON.stringify(mm)}`);

const mBefore = await metrics(server.base);
const tRun = Date.now();
const tally = newTally();
// RSS at 25, 50 and 75% of the run: a leak grows with the requests served.
const rssQuarters = [];
const progress = setInterval(() => {
  while (rssQuarters.length < 3 && tally.done >= ((rssQuarters.length + 1) * opt.requests) / 4)
    rssQuarters.push(rssKiB(pid));
  if (opt.json || !process.stdout.isTTY) return;
  const s = (Date.now() - tRun) / 1000;
  const rate = tally.done / s;
  process.stdout.write(`\r  ${tally.done}/${opt.requests} requests, ${rate.toFixed(1)}/s, ETA ` +
    `${rate > 0 ? ((opt.requests - tally.done) / rate).toFixed(0) : "?"} s   `);
}, 250);
await drive(server, mainQueue, reference, opt.concurrency, tally);
clearInterval(progress);
if (!opt.json && process.stdout.isTTY) process.stdout.write("\n");
const runSeconds = (Date.now() - tRun) / 1000;
const crashed = server.child.exitCode !== null || server.child.signalCode !== null;
if (crashed)
  violations.push(`the server died: code ${server.child.exitCode} signal ${server.child.signalCode}\n` +
    server.stderr());

// 4. Afterwards.
let after = {}, rssAfter = NaN, replayed = 0;
if (!crashed) {
  q = await quiesce(server.base);
  after = q.m;
  if (!q.idle) violations.push(`not idle after the run: ${JSON.stringify(after)}`);
  rssAfter = rssKiB(pid);
  if (!opt.skipRss && rssAfter > rssWarm * (1 + opt.rssMargin))
    violations.push(`RSS grew from ${rssWarm} KiB after warm-up to ${rssAfter} KiB (margin ` +
      `${opt.rssMargin * 100}%)`);
  const h = await fetch(`${server.base}/health`);
  if (h.status !== 200) violations.push(`/health after the run: ${h.status}`);
  // Still answers, and correctly: a sample replayed alone on the same server.
  for (const d of distinct.slice(0, 20)) {
    const got = await runValid(server.base, { ...d, stream: false });
    if (got.text !== reference.get(d.id).text)
      violations.push(`after the run, request ${d.id} alone differs from the reference`);
    ++replayed;
  }
  const e = await stopServer(server);
  if (e) violations.push(`server: ${e}`);
}
violations.push(...tally.violations);
for (const mm of tally.mismatches) violations.push(`mismatch: ${JSON.stringify(mm).slice(0, 600)}`);

const delta = (k) => (after[k] ?? NaN) - (mBefore[k] ?? NaN);
const report = {
  requests: opt.requests, concurrency: opt.concurrency, seed: opt.seed,
  distinct_valid: distinct.length, warmup_requests: warmN,
  kinds: tally.kinds, status: tally.status, disconnects: tally.disconnects,
  valid_checked: tally.validChecked, mismatches: tally.mismatches.length,
  pool_blocks: pool, block_tokens: BLOCK, mean_peak_tokens: Number(meanPeak.toFixed(1)),
  oversubscription: Number(oversub.toFixed(2)),
  preemptions: delta("thinkeys_preemptions_total"),
  cancelled: delta("thinkeys_requests_cancelled_total"),
  refused: delta("thinkeys_requests_refused_total"),
  blocks_used_after: after.thinkeys_kv_blocks_used, running_after: after.thinkeys_requests_running,
  waiting_after: after.thinkeys_requests_waiting,
  rss_kib: { start: rssStart, after_warmup: rssWarm, at_25_50_75_percent: rssQuarters, after_run: rssAfter },
  rss_margin: opt.rssMargin, replayed_after: replayed,
  run_seconds: Number(runSeconds.toFixed(1)),
  total_seconds: Number(((Date.now() - t0) / 1000).toFixed(1)),
  violations,
};
if (opt.json) {
  console.log(JSON.stringify(report, null, 2));
} else {
  const { violations: _, ...rest } = report;
  for (const [k, v] of Object.entries(rest)) console.log(`${k}: ${JSON.stringify(v)}`);
  for (const v of violations.slice(0, 20)) console.log(`VIOLATION: ${v}`);
  if (violations.length > 20) console.log(`... ${violations.length - 20} more`);
  console.log(violations.length ? `FAIL: ${violations.length} violations` : "PASS");
}
process.exit(violations.length ? 1 : 0);
