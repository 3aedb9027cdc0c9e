// What every `thinkeys serve` test in this folder needs: free loopback ports,
// a server started and waited for (/health), stopped with SIGTERM and
// checked to exit 0, /metrics parsed, and a bound on the whole test so that
// nothing outlives it.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import assert from "node:assert/strict";

const children = new Set();

// Kills every child on exit and fails the test after `seconds`.
export function bounded(seconds) {
  process.on("exit", () => {
    for (const c of children) c.kill("SIGKILL");
  });
  process.on("uncaughtException", (e) => {
    console.error(e);
    process.exit(1);
  });
  process.on("unhandledRejection", (e) => {
    console.error(e);
    process.exit(1);
  });
  return setTimeout(() => {
    console.error(`FAIL: the test took longer than ${seconds} s`);
    for (const c of children) c.kill("SIGKILL");
    process.exit(1);
  }, seconds * 1000);
}

// A child process this test owns: killed when the test exits.
export function track(child) {
  children.add(child);
  child.exited = new Promise((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })));
  child.exited.then(() => children.delete(child));
  return child;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One line per step of a test, so a failure shows how far it got.
export const step = (name) => console.log(`- ${name}`);

// A scratch directory under the system's temporary folder, removed on exit.
export function scratchDir(prefix) {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// Starts `binary serve ARGS` on 127.0.0.1 and a free port and waits for
// /health to say 200 (503 with Retry-After before that).
export async function startServer(binary, args, { port } = {}) {
  port = port ?? (await freePort());
  const child = track(spawn(binary, ["serve", ...args, "--host", "127.0.0.1", "--port", String(port)], {
    stdio: ["ignore", "inherit", "pipe"],
  }));
  let log = "";
  child.stderr.on("data", (d) => {
    log += d;
  });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  let sawLoading = false;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited early:\n${log}`);
    try {
      const r = await fetch(`${base}/health`);
      if (r.status === 200) break;
      assert.equal(r.status, 503);
      assert.ok(r.headers.get("retry-after"));
      sawLoading = true;
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
    }
    if (Date.now() > deadline) throw new Error(`no /health within 60 s:\n${log}`);
    await sleep(50);
  }
  return { child, base, port, log: () => log, sawLoading };
}

// SIGTERM, then the server must exit by itself with status 0.
export async function stopServer(server) {
  server.child.kill("SIGTERM");
  const { code, signal } = await server.child.exited;
  assert.equal(signal, null, "the server must exit by itself on SIGTERM");
  assert.equal(code, 0, `exit code after SIGTERM:\n${server.log()}`);
}

// The unlabelled samples of /metrics, by name.
export async function metrics(base) {
  const text = await (await fetch(`${base}/metrics`)).text();
  const out = {};
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+) ([0-9.e+-]+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

// The command line every serve test takes: the thinkeys binary and the shared
// folder ($THINKEYS_SHARED wins). Exits 2 on a missing binary and 77 (ctest:
// skipped) when stories260K is not there.
export function serveTestArgs(script) {
  const [binary, sharedArg] = process.argv.slice(2);
  const shared = process.env.THINKEYS_SHARED || sharedArg;
  const model = path.join(shared ?? "", "models/stories260K/stories260K.bin");
  if (!binary || !existsSync(binary)) {
    console.error(`usage: node ${script} THINKEYS_BINARY SHARED_DIR`);
    process.exit(2);
  }
  if (!existsSync(model)) {
    console.log(`SKIP: ${model} not found (set THINKEYS_SHARED)`);
    process.exit(77);
  }
  return { binary, shared, model };
}
