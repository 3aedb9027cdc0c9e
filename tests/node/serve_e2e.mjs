// End to end: starts `thinkeys serve` on 127.0.0.1 and a free port, waits for
// /health, drives it with the official openai client (6.x) and raw fetch, and
// stops it with SIGTERM. Expectations are independent of the server: greedy
// text must equal `thinkeys generate` (the dense single-sequence path),
// concurrent streams must equal the same requests one at a time, and errors
// must have OpenAI's status and JSON shape.
//
// Usage: node serve_e2e.mjs THINKEYS_BINARY SHARED_DIR ($THINKEYS_SHARED wins)
// Exit 77 (ctest: skipped) when the shared model or node_modules is missing.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";
import { bounded, metrics, startServer as start, stopServer, serveTestArgs, step } from "./serve_harness.mjs";

const { binary, shared, model } = serveTestArgs("serve_e2e.mjs");
let OpenAI;
try {
  OpenAI = (await import("openai")).default;
} catch {
  console.log("SKIP: the openai package is not installed (cd tests/node && npm ci)");
  process.exit(77);
}

const KEY = "test-key-123";
const watchdog = bounded(240);
const startServer = (args) => start(binary, args);

async function expectApiError(promise, status, check = () => {}) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.status, status, `expected HTTP ${status}, got ${e.status}: ${e.message}`);
    check(e.error);
    return;
  }
  assert.fail(`expected HTTP ${status}, got success`);
}

async function rawError(base, route, body, status, headers = {}) {
  const r = await fetch(`${base}${route}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${KEY}`, ...headers },
    body,
  });
  assert.equal(r.status, status, `${route} ${body.slice(0, 40)}`);
  const j = await r.json();
  assert.equal(typeof j.error.message, "string");
  assert.equal(typeof j.error.type, "string");
  assert.ok("param" in j.error && "code" in j.error);
  return j.error;
}

async function collect(stream) {
  let text = "";
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.text ?? c.delta?.content ?? "";
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, usage, finish };
}


// ---------------------------------------------------------------------------
// stories260K, f32 cache so the paged path can be compared with the dense one.
const s = await startServer([
  model, "--api-key", KEY, "--model-name", "stories", "--cache-k", "f32", "--cache-v", "f32",
  "--cache-mb", "64", "--block-tokens", "16", "--max-batch", "16", "--max-queue", "32",
  "--prefill-chunk", "32", "--drain-seconds", "5",
]);
const client = new OpenAI({ baseURL: `${s.base}/v1`, apiKey: KEY, maxRetries: 0, timeout: 60_000 });

step("models, tokenize, detokenize");
const models = await client.models.list();
assert.deepEqual(models.data.map((m) => m.id), ["stories"]);
const tk = await (await fetch(`${s.base}/tokenize`, {
  method: "POST", headers: { Authorization: `Bearer ${KEY}` },
  body: JSON.stringify({ content: "Once upon a time" }),
})).json();
assert.ok(tk.tokens.length > 0);
const dt = await (await fetch(`${s.base}/detokenize`, {
  method: "POST", headers: { Authorization: `Bearer ${KEY}` },
  body: JSON.stringify({ tokens: tk.tokens }),
})).json();
assert.equal(dt.content.trim(), "Once upon a time");

step("greedy completion equals thinkeys generate");
const prompt = "Once upon a time";
const generated = execFileSync(binary, ["generate", model, "-p", prompt, "-n", "40", "-q"], {
  encoding: "utf8",
});
assert.ok(generated.startsWith(prompt));
const expected = generated.slice(prompt.length).replace(/\n$/, "");
const done = await client.completions.create({
  model: "stories", prompt, max_tokens: 40, temperature: 0,
});
assert.equal(done.choices[0].text, expected);
assert.equal(done.object, "text_completion");
assert.ok(["stop", "length"].includes(done.choices[0].finish_reason));
assert.equal(done.usage.prompt_tokens, tk.tokens.length + 1); // BOS, as generate adds it
assert.equal(done.usage.total_tokens, done.usage.prompt_tokens + done.usage.completion_tokens);

step("streamed completion: same text, usage chunk, [DONE]");
const streamed = await collect(await client.completions.create({
  model: "stories", prompt, max_tokens: 40, temperature: 0, stream: true,
  stream_options: { include_usage: true },
}));
assert.equal(streamed.text, expected);
assert.equal(streamed.finish, done.choices[0].finish_reason);
assert.deepEqual(streamed.usage, done.usage);
const sse = await fetch(`${s.base}/v1/completions`, {
  method: "POST", headers: { Authorization: `Bearer ${KEY}` },
  body: JSON.stringify({ prompt, max_tokens: 5, temperature: 0, stream: true }),
});
assert.equal(sse.headers.get("content-type"), "text/event-stream");
const sseText = await sse.text();
assert.ok(sseText.endsWith("data: [DONE]\n\n"), sseText.slice(-80));

step("stop strings and logprobs");
const words = expected.split(" ").filter((w) => w.length > 2);
const stopWord = words[Math.min(3, words.length - 1)];
const stopped = await client.completions.create({
  model: "stories", prompt, max_tokens: 40, temperature: 0, stop: [stopWord], logprobs: 2,
});
assert.equal(stopped.choices[0].text, expected.slice(0, expected.indexOf(stopWord)));
assert.equal(stopped.choices[0].finish_reason, "stop");
const lp = stopped.choices[0].logprobs;
assert.equal(lp.tokens.length, lp.token_logprobs.length);
for (let i = 0; i < lp.tokens.length; ++i) {
  const top = Object.values(lp.top_logprobs[i]);
  assert.ok(lp.token_logprobs[i] <= 0);
  // Greedy: the chosen token is the most likely one.
  assert.ok(Math.abs(Math.max(...top) - lp.token_logprobs[i]) < 1e-5);
}

step("16 concurrent streams equal the same requests one by one");
const reqs = Array.from({ length: 16 }, (_, i) => ({
  model: "stories", prompt: `${["Lily", "Tom", "Ben", "Sue"][i % 4]} went to the ${["park", "sea", "shop", "zoo"][(i >> 2) % 4]}`,
  max_tokens: 24 + i, temperature: 0.8, top_p: 0.95, seed: 1000 + i,
}));
const together = await Promise.all(reqs.map(async (r) =>
  (await collect(await client.completions.create({ ...r, stream: true }))).text));
const m16 = await metrics(s.base);
for (let i = 0; i < reqs.length; ++i) {
  const alone = await client.completions.create(reqs[i]);
  assert.equal(together[i], alone.choices[0].text, `request ${i}`);
}
assert.ok(m16.thinkeys_time_to_first_token_seconds_count >= 16);

step("a client that disconnects mid-stream frees its blocks");
const before = await metrics(s.base);
const controller = new AbortController();
const long = await client.completions.create(
  { model: "stories", prompt: [1], max_tokens: 500, temperature: 0.9, seed: 5, stream: true },
  { signal: controller.signal });
let chunks = 0;
try {
  for await (const _ of long) {
    if (++chunks === 2) controller.abort();
  }
} catch (e) {
  assert.ok(controller.signal.aborted, `unexpected error ${e}`);
}
let after;
for (let i = 0; i < 100; ++i) {
  after = await metrics(s.base);
  if (after.thinkeys_requests_cancelled_total > before.thinkeys_requests_cancelled_total &&
      after.thinkeys_kv_blocks_used === 0) break;
  await new Promise((r) => setTimeout(r, 100));
}
assert.equal(after.thinkeys_requests_cancelled_total, before.thinkeys_requests_cancelled_total + 1);
assert.equal(after.thinkeys_kv_blocks_used, 0);
assert.equal(after.thinkeys_requests_running, 0);
assert.ok(after.thinkeys_generation_tokens_total - before.thinkeys_generation_tokens_total < 500);

step("errors: status and OpenAI error JSON, and the server keeps serving");
let e = await rawError(s.base, "/v1/completions", "{not json", 400);
assert.equal(e.type, "invalid_request_error");
await expectApiError(client.completions.create({ model: "stories", prompt, max_tokens: "ten" }), 400,
  (err) => assert.equal(err.param, "max_tokens"));
await expectApiError(client.completions.create({ model: "stories", prompt: Array(600).fill(5) }), 400,
  (err) => assert.equal(err.code, "context_length_exceeded"));
await expectApiError(client.completions.create({ model: "gpt-9", prompt }), 404,
  (err) => assert.equal(err.code, "model_not_found"));
const wrong = new OpenAI({ baseURL: `${s.base}/v1`, apiKey: "wrong", maxRetries: 0 });
await expectApiError(wrong.completions.create({ model: "stories", prompt }), 401,
  (err) => assert.equal(err.type, "authentication_error"));
await expectApiError(client.completions.create({ model: "stories", prompt, n: 2 }), 400,
  (err) => assert.equal(err.param, "n"));
await expectApiError(client.chat.completions.create({
  model: "stories", messages: [{ role: "user", content: "hi" }],
}), 400, (err) => assert.match(err.message, /chat template/));
e = await rawError(s.base, "/v1/completions", JSON.stringify({ prompt: "x".repeat(9 << 20) }), 413);
e = await rawError(s.base, "/v1/nothing", "{}", 404);
assert.equal(e.type, "not_found_error");
const again = await client.completions.create({ model: "stories", prompt, max_tokens: 40, temperature: 0 });
assert.equal(again.choices[0].text, expected);
const final = await metrics(s.base);
assert.equal(final.thinkeys_kv_blocks_used, 0);
assert.equal(final.thinkeys_requests_waiting, 0);

step("SIGTERM: graceful stop, exit 0");
await stopServer(s);

clearTimeout(watchdog);
console.log("PASS");
