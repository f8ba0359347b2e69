// Helpers for the end-to-end suite: the switchboard process, Chromium, peer scripts, and
// bounded waits. Everything here has a time limit; nothing waits forever.
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const E2E_DIR = path.dirname(fileURLToPath(import.meta.url));
export const REPO_DIR = path.resolve(E2E_DIR, '..', '..');
export const ARTIFACTS_DIR = path.join(REPO_DIR, 'target', 'e2e-artifacts');
export const SWITCHBOARD_BIN = path.resolve(REPO_DIR, process.env.SWITCHBOARD_BIN || 'target/debug/switchboard');
export const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
export const PYTHON_BIN = process.env.PYTHON_BIN || 'python3';

/** Chromium flags: loopback ICE, fake camera and microphone, nothing that phones home. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--allow-loopback-in-peer-connection',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--no-first-run',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects with `what` after `ms` unless `promise` settles first. */
export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/** Polls `fn` (async allowed) until it returns a truthy value; throws after `ms`. */
export async function waitFor(fn, ms, what, intervalMs = 50) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms: ${what}${last instanceof Error ? ` (last error: ${last.message})` : ''}`);
    }
    await sleep(intervalMs);
  }
}

export function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

/** Whether this build has an admin listener (default port 9090): then it goes on port 0. */
let adminFlag = null;
function adminArgs() {
  if (adminFlag === null) {
    const help = spawnSync(SWITCHBOARD_BIN, ['serve', '--help'], { encoding: 'utf8' });
    adminFlag = /--admin-listen/.test(help.stdout || '');
  }
  return adminFlag ? ['--admin-listen', '127.0.0.1:0'] : [];
}

/**
 * Starts switchboard on ephemeral ports and reads the bound addresses from its JSON log.
 * @param {{env?: object, args?: string[], stun?: boolean, log: (s: string) => void}} o
 * @returns {Promise<{addr: string, stunAddr: string|null, http: string, ws: string, stop: () => Promise<void>, lines: string[]}>}
 */
export async function startServer({ env = {}, args = [], stun = true, log }) {
  const argv = ['serve', '--listen', '127.0.0.1:0', '--log-format', 'json', '--shards', '2'];
  if (stun) argv.push('--stun-listen', '127.0.0.1:0');
  argv.push(...adminArgs(), ...args);
  const child = spawn(SWITCHBOARD_BIN, argv, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = [];
  let addr = null;
  let stunAddr = null;
  let exited = null;
  const ready = new Promise((resolve, reject) => {
    const onLine = (line) => {
      lines.push(line);
      let j;
      try { j = JSON.parse(line); } catch { return; }
      const f = j.fields || {};
      if (f.message === 'STUN server bound') stunAddr = f.addr;
      if (f.message === 'switchboard started') { addr = f.addr; resolve(); }
    };
    createInterface({ input: child.stdout }).on('line', onLine);
    createInterface({ input: child.stderr }).on('line', onLine);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      exited = { code, signal };
      reject(new Error(`switchboard exited early (${code ?? signal}):\n${lines.slice(-20).join('\n')}`));
    });
  });
  try {
    await withTimeout(ready, 10000, 'switchboard to log "switchboard started"');
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  log(`switchboard pid ${child.pid} on ${addr}${stunAddr ? `, STUN ${stunAddr}` : ', no STUN'}`);
  const stop = async () => {
    if (exited) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    try {
      await withTimeout(gone, 5000, 'switchboard to exit on SIGTERM');
    } catch {
      child.kill('SIGKILL');
      await withTimeout(gone, 2000, 'switchboard to exit on SIGKILL').catch(() => {});
    }
  };
  return { addr, stunAddr, http: `http://${addr}`, ws: `ws://${addr}/v1/signal`, stop, lines, child };
}

/**
 * Starts a peer script (Python or Node) and collects its output. `result` resolves with the
 * JSON after the first `RESULT ` line it prints.
 */
export function startPeer(cmd, args, log, label) {
  const child = spawn(cmd, args, { cwd: E2E_DIR, env: process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  const lines = [];
  let exited = false;
  const result = new Promise((resolve, reject) => {
    const onLine = (line) => {
      lines.push(line);
      if (line.startsWith('RESULT ')) {
        try { resolve(JSON.parse(line.slice(7))); } catch (e) { reject(e); }
      }
    };
    createInterface({ input: child.stdout }).on('line', onLine);
    createInterface({ input: child.stderr }).on('line', (l) => lines.push(`[stderr] ${l}`));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      exited = true;
      reject(new Error(`${label} exited (${code ?? signal}) before its result`));
    });
  });
  result.catch(() => {}); // observed by the test; avoid unhandled-rejection noise
  const stop = async () => {
    if (exited) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    try { await withTimeout(gone, 3000, `${label} to exit`); } catch { child.kill('SIGKILL'); }
  };
  log(`${label} pid ${child.pid}`);
  return { child, lines, result, stop, label };
}
