// End-to-end suite: switchboard with real WebRTC clients (Chromium through playwright-core,
// aiortc, node-datachannel). Run inside a loopback-only network namespace:
//
//   unshare -n sh -c 'ip link set lo up && node tests/e2e/run.mjs [name-filter]'
//
// Each case starts its own switchboard (SWITCHBOARD_BIN, default target/debug/switchboard)
// on ephemeral ports and stops it. Prints one `N passed, N failed` line; exits 1 on failure.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  ARTIFACTS_DIR, CHROMIUM_ARGS, CHROMIUM_BIN, E2E_DIR, PYTHON_BIN, SWITCHBOARD_BIN,
  assert, sleep, startPeer, startServer, waitFor, withTimeout,
} from './lib.mjs';

/**
 * True when the server keeps sessions across a reconnect (`resume` answered with `resumed`,
 * config key `signal.resume_grace_ms`): the resume case then requires the same session id
 * and the frames sent meanwhile to arrive, and the "no resume" case runs on a server started
 * with `SWITCHBOARD_SIGNAL_RESUME_GRACE_MS=0`. With false only the "no resume" case runs, on
 * a default server (which answers `session-expired`). `SWITCHBOARD_E2E_RESUME=0|1`
 * overrides it.
 */
const SERVER_RESUMES = process.env.SWITCHBOARD_E2E_RESUME
  ? process.env.SWITCHBOARD_E2E_RESUME === '1'
  : true;

/** Upper bound for one case, everything included. */
const CASE_MS_MAX = 90000;

// ---------------------------------------------------------------------------------------
// In-page agent: one SwitchboardClient and at most one PeerLink, state on window.agent.
// Serialized into the page by page.evaluate, so it must be self-contained.

async function pageAgent(o) {
  const { SwitchboardClient, PeerLink } = await import('/v1/client.js');
  const client = new SwitchboardClient(undefined, o.clientOptions || {});
  const st = {
    client, link: null, channel: null, received: [], local: [], urls: [], states: [],
    errors: [], events: [], peerId: null, stream: null, sentHello: false,
  };
  window.agent = st;
  for (const t of ['state', 'disconnected', 'resumed', 'new-session', 'peer-joined', 'peer-left', 'server-error', 'message']) {
    client.addEventListener(t, (e) => st.events.push({ t, d: JSON.parse(JSON.stringify(e.detail)), at: Date.now() }));
  }
  await client.connect();
  if (o.media) st.stream = await navigator.mediaDevices.getUserMedia({ video: { width: 320, height: 240 }, audio: false });

  const onChannel = (ch) => {
    st.channel = ch;
    const hello = () => { if (!st.sentHello) { st.sentHello = true; ch.send(`hello from ${o.name}`); } };
    ch.addEventListener('open', hello);
    ch.addEventListener('message', (e) => st.received.push(e.data));
    if (ch.readyState === 'open') hello();
  };
  const setup = (peerId) => {
    const link = new PeerLink(client, peerId, o.rtcConfig ? { rtcConfig: o.rtcConfig } : {});
    st.link = link;
    st.peerId = peerId;
    link.pc.addEventListener('icecandidate', (e) => {
      if (e.candidate && e.candidate.candidate) { st.local.push(e.candidate.candidate); if (e.candidate.url) st.urls.push(e.candidate.url); }
    });
    link.pc.addEventListener('connectionstatechange', () => st.states.push(link.pc.connectionState));
    link.addEventListener('error', (e) => st.errors.push(String(e.detail.error)));
    link.addEventListener('datachannel', (e) => onChannel(e.channel));
    return link;
  };
  client.addEventListener('offer', (e) => {
    if (st.link) return;
    const link = setup(e.detail.from);
    link.handle(e.detail).then(() => {
      // Our own media goes in a second negotiation, started from this side.
      if (st.stream) for (const t of st.stream.getTracks()) link.pc.addTrack(t, st.stream);
    });
  });
  await client.join(o.room, { name: o.name });
  if (o.role === 'offer') {
    let id = null;
    const deadline = Date.now() + 20000;
    while (!id && Date.now() < deadline) {
      for (const [pid, m] of client.rooms.get(o.room).peers) if (m && m.name === o.peerName) id = pid;
      if (!id) await new Promise((r) => setTimeout(r, 50));
    }
    if (!id) throw new Error(`no peer named ${o.peerName} joined`);
    const link = setup(id);
    onChannel(link.pc.createDataChannel('chat'));
    if (st.stream) for (const t of st.stream.getTracks()) link.pc.addTrack(t, st.stream);
  }
  return client.id;
}

// ---------------------------------------------------------------------------------------
// Runner plumbing

/**
 * Launched browsers by flavour: `media` has the fake camera and auto-accepted prompts;
 * `nomedia` has neither, so no page ever holds media permission (with the fake-UI flag,
 * Chromium treats every page as granted and gathers loopback host candidates).
 */
const browsers = new Map();
async function getBrowser(flavour = 'media') {
  if (!browsers.has(flavour)) {
    const args = flavour === 'media' ? CHROMIUM_ARGS : CHROMIUM_ARGS.filter((a) => !a.startsWith('--use-fake-'));
    browsers.set(flavour, withTimeout(chromium.launch({
      executablePath: CHROMIUM_BIN,
      args,
      headless: true,
    }), 30000, 'Chromium to launch'));
  }
  return browsers.get(flavour);
}

/** Per-case context: logs, browser contexts, processes; all closed at the end. */
class Ctx {
  constructor(name) {
    this.name = name;
    this.logs = [];
    this.cleanups = [];
    this.peers = [];
  }

  log(s) { this.logs.push(`[${new Date().toISOString().slice(11, 23)}] ${s}`); }

  async server(opts = {}) {
    const s = await startServer({ ...opts, log: (m) => this.log(m) });
    this.cleanups.push(() => s.stop());
    this.servers = [...(this.servers || []), s];
    return s;
  }

  /** A page on the server's origin (pages from other origins may not reach ws://127.0.0.1). */
  async page(server, label, { grant = true, url = '/healthz' } = {}) {
    const b = await getBrowser(grant ? 'media' : 'nomedia');
    const context = await b.newContext({ viewport: { width: 1280, height: 900 } });
    if (grant) await context.grantPermissions(['camera', 'microphone'], { origin: server.http });
    this.cleanups.push(() => context.close());
    const page = await context.newPage();
    page.on('console', (m) => this.log(`${label} console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => this.log(`${label} pageerror: ${e.message}`));
    page.setDefaultTimeout(15000);
    await page.goto(server.http + url);
    return page;
  }

  peer(cmd, args, label) {
    const p = startPeer(cmd, args, (m) => this.log(m), label);
    this.peers.push(p);
    this.cleanups.push(() => p.stop());
    return p;
  }

  async close() {
    for (const f of this.cleanups.reverse()) {
      try { await withTimeout(Promise.resolve().then(f), 10000, 'cleanup'); } catch (e) { this.log(`cleanup: ${e.message}`); }
    }
  }
}

const agentState = (page) => page.evaluate(() => {
  const a = window.agent;
  if (!a) return null;
  return {
    id: a.client.id,
    clientState: a.client.state,
    pc: a.link ? a.link.pc.connectionState : null,
    dc: a.channel ? a.channel.readyState : null,
    received: a.received.filter((x) => typeof x === 'string'),
    local: a.local,
    urls: a.urls,
    states: a.states,
    errors: a.errors,
    events: a.events,
  };
});

async function connectPair(ctx, server, { grant = true, media = false, rtcConfig, room = 'pair', clientOptions } = {}) {
  const a = await ctx.page(server, 'alice', { grant });
  const b = await ctx.page(server, 'bob', { grant });
  const common = { room, media, rtcConfig, clientOptions };
  await b.evaluate(pageAgent, { ...common, name: 'bob', role: 'answer' });
  await a.evaluate(pageAgent, { ...common, name: 'alice', role: 'offer', peerName: 'bob' });
  return { a, b };
}

async function framesDecoded(page) {
  return page.evaluate(async () => {
    const stats = await window.agent.link.pc.getStats();
    let n = 0;
    stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0; });
    return n;
  });
}

// ---------------------------------------------------------------------------------------
// Cases

const cases = [];
const test = (name, fn) => cases.push({ name, fn });

test('client API in Node: requests, errors by ref, relays, events', async (ctx) => {
  const server = await ctx.server();
  const { SwitchboardClient, SwitchboardError } = await import('../../client/switchboard.js');
  const { default: WebSocket } = await import('ws');
  const opts = { WebSocket, requestTimeoutMs: 5000 };
  const a = new SwitchboardClient(server.ws, opts);
  const b = new SwitchboardClient(server.ws, opts);
  ctx.cleanups.push(() => { a.close(); b.close(); });
  const seen = { a: [], b: [] };
  for (const [n, c] of [['a', a], ['b', b]]) {
    for (const t of ['peer-joined', 'peer-left', 'message', 'broadcast', 'server-error', 'signal']) {
      c.addEventListener(t, (e) => seen[n].push({ t, d: e.detail }));
    }
  }
  const welcome = await withTimeout(a.connect(), 5000, 'welcome');
  assert(welcome.type === 'welcome' && /^[A-Za-z0-9_-]{11}$/.test(a.id), `welcome and id (${a.id})`);
  assert(a.iceServers.length > 0 && a.iceServers.every((s) => s.urls.every((u) => !u.includes('?'))), `usable iceServers ${JSON.stringify(a.iceServers)}`);
  await b.connect();
  const joined = await a.join('api', { name: 'a' });
  assert(joined.type === 'joined' && joined.peers.length === 0, 'a joins an empty room');
  const joinedB = await b.join('api', { name: 'b' });
  assert(joinedB.peers.length === 1 && joinedB.peers[0].id === a.id && joinedB.peers[0].meta.name === 'a', 'b sees a');
  await waitFor(() => seen.a.some((e) => e.t === 'peer-joined' && e.d.id === b.id && e.d.meta.name === 'b'), 3000, 'a sees b join');
  assert(a.rooms.get('api').peers.has(b.id), 'a tracks b in the room');
  // An error is matched to its request by ref and rejects that request only.
  const [again, pong] = await Promise.allSettled([a.join('api'), a.ping()]);
  assert(again.status === 'rejected' && again.reason instanceof SwitchboardError && again.reason.code === 'already-in-room', `second join rejects already-in-room (${again.reason})`);
  assert(typeof again.reason.frame.ref === 'number', 'the error frame carries our ref');
  assert(pong.status === 'fulfilled' && pong.value.type === 'pong', 'ping in the same batch resolves');
  // Relays and broadcast.
  a.sendMessage(b.id, { hi: 1 });
  a.broadcast('api', 'to all');
  a.sendMessage('AAAAAAAAAAZ', 'nobody');
  await waitFor(() => seen.b.some((e) => e.t === 'message' && e.d.from === a.id && e.d.data.hi === 1), 3000, 'b gets the message');
  await waitFor(() => seen.b.some((e) => e.t === 'broadcast' && e.d.from === a.id && e.d.data === 'to all'), 3000, 'b gets the broadcast');
  await waitFor(() => seen.a.some((e) => e.t === 'server-error' && e.d.code === 'unknown-target'), 3000, 'unknown-target as server-error');
  // Leave, and leave again.
  const left = await b.leave('api');
  assert(left.type === 'left' && !b.rooms.has('api'), 'b left');
  await waitFor(() => seen.a.some((e) => e.t === 'peer-left' && e.d.id === b.id), 3000, 'a sees b leave');
  const leftAgain = await b.leave('api').then(() => null, (e) => e);
  assert(leftAgain && leftAgain.code === 'not-in-room', `leaving twice rejects not-in-room (${leftAgain})`);
  // A server that goes away: the client reports the drop and goes on trying.
  const states = [];
  a.addEventListener('state', (e) => states.push(e.detail.state));
  const pending = a.ping().catch((e) => e);
  await server.stop();
  const err = await withTimeout(pending, 3000, 'pending ping settles');
  assert((err instanceof SwitchboardError && ['disconnected', 'timeout'].includes(err.code)) || err.type === 'pong', `pending request settles (${err})`);
  await waitFor(() => a.state === 'reconnecting', 3000, 'a reconnecting');
  a.close();
  assert(a.state === 'closed', 'closed for good');
  let threw = null;
  try { a.sendMessage(b.id, 'x'); } catch (e) { threw = e; }
  assert(threw && threw.code === 'closed', 'send after close throws');
  ctx.log(`states ${states.join(' → ')}`);
});

test('chromium-chromium data channel and video', async (ctx) => {
  const server = await ctx.server();
  const { a, b } = await connectPair(ctx, server, { media: true });
  await waitFor(async () => {
    const [sa, sb] = [await agentState(a), await agentState(b)];
    return sa.received.includes('hello from bob') && sb.received.includes('hello from alice');
  }, 15000, 'hello both ways over the data channel');
  // A message each way after the greeting, to show the channel keeps working.
  await a.evaluate(() => window.agent.channel.send('ping from alice'));
  await b.evaluate(() => window.agent.channel.send('ping from bob'));
  await waitFor(async () => (await agentState(b)).received.includes('ping from alice')
    && (await agentState(a)).received.includes('ping from bob'), 10000, 'second messages');
  // Both sent fake video; bob's arrived in the first negotiation, alice's in a second one
  // that bob started (perfect negotiation on both sides).
  const fa = await waitFor(async () => { const n = await framesDecoded(a); return n > 0 && n; }, 20000, 'alice decodes bob\'s video');
  const fb = await waitFor(async () => { const n = await framesDecoded(b); return n > 0 && n; }, 20000, 'bob decodes alice\'s video');
  ctx.log(`frames decoded: alice ${fa}, bob ${fb}`);
  const sa = await agentState(a);
  assert(sa.errors.length === 0, `no negotiation errors (${sa.errors})`);
});

test('chromium-aiortc', async (ctx) => {
  const server = await ctx.server();
  const py = ctx.peer(PYTHON_BIN, [path.join(E2E_DIR, 'peers/aiortc_peer.py'), server.ws, 'mixed', 'aiortc', 'answer', 'chromium'], 'aiortc');
  const page = await ctx.page(server, 'chromium');
  // aiortc joins first, so chromium finds it in `joined`; wait for its session.
  await sleep(300);
  await page.evaluate(pageAgent, { room: 'mixed', name: 'chromium', role: 'offer', peerName: 'aiortc' });
  const r = await withTimeout(py.result, 20000, 'aiortc to receive chromium\'s hello');
  assert(r.received === 'hello from chromium', `aiortc got ${r.received}`);
  await waitFor(async () => (await agentState(page)).received.includes('hello from aiortc'), 15000, 'chromium receives aiortc\'s hello');
});

test('chromium-node-datachannel', async (ctx) => {
  const server = await ctx.server();
  const page = await ctx.page(server, 'chromium');
  await page.evaluate(pageAgent, { room: 'mixed', name: 'chromium', role: 'answer' });
  const nd = ctx.peer(process.execPath, [path.join(E2E_DIR, 'peers/ndc_peer.mjs'), server.ws, 'mixed', 'ndc', 'offer', 'chromium'], 'node-datachannel');
  const r = await withTimeout(nd.result, 20000, 'node-datachannel to receive chromium\'s hello');
  assert(r.received === 'hello from chromium', `node-datachannel got ${r.received}`);
  await waitFor(async () => (await agentState(page)).received.includes('hello from ndc'), 15000, 'chromium receives node-datachannel\'s hello');
});

test('aiortc-node-datachannel', async (ctx) => {
  const server = await ctx.server();
  const nd = ctx.peer(process.execPath, [path.join(E2E_DIR, 'peers/ndc_peer.mjs'), server.ws, 'native', 'ndc', 'answer', 'aiortc'], 'node-datachannel');
  await sleep(300);
  const py = ctx.peer(PYTHON_BIN, [path.join(E2E_DIR, 'peers/aiortc_peer.py'), server.ws, 'native', 'aiortc', 'offer', 'ndc'], 'aiortc');
  const [rn, rp] = await withTimeout(Promise.all([nd.result, py.result]), 25000, 'both native peers to get a hello');
  assert(rn.received === 'hello from aiortc', `node-datachannel got ${rn.received}`);
  assert(rp.received === 'hello from ndc', `aiortc got ${rp.received}`);
});

test('chromium without media permission connects through our STUN only', async (ctx) => {
  const server = await ctx.server();
  const stunUrl = `stun:${server.stunAddr}`;
  const { a, b } = await connectPair(ctx, server, { grant: false, room: 'stun' });
  for (const p of [a, b]) {
    const perm = await p.evaluate(() => navigator.permissions.query({ name: 'camera' }).then((r) => r.state));
    assert(perm !== 'granted', `camera permission not granted (${perm})`);
  }
  const ice = await a.evaluate(() => window.agent.client.iceServers);
  assert(JSON.stringify(ice).includes(stunUrl), `welcome advertises ${stunUrl}: ${JSON.stringify(ice)}`);
  await waitFor(async () => {
    const [sa, sb] = [await agentState(a), await agentState(b)];
    return sa.received.includes('hello from bob') && sb.received.includes('hello from alice');
  }, 20000, 'data channel through srflx candidates');
  for (const [who, p] of [['alice', a], ['bob', b]]) {
    const s = await agentState(p);
    ctx.log(`${who} candidates: ${s.local.join(' | ')}; urls ${s.urls.join(' ')}`);
    assert(s.local.some((c) => / typ srflx /.test(c)), `${who} gathered a srflx candidate`);
    assert(!s.local.some((c) => / typ host /.test(c) && c.includes(' 127.0.0.1 ')), `${who} exposed no loopback host candidate`);
    assert(s.urls.every((u) => u.startsWith(stunUrl)), `${who}'s srflx came from our STUN (${s.urls})`);
    const pair = await p.evaluate(async () => {
      const stats = await window.agent.link.pc.getStats();
      let out = null;
      stats.forEach((r) => {
        if (r.type === 'transport' && r.selectedCandidatePairId) {
          const cp = stats.get(r.selectedCandidatePairId);
          out = { local: stats.get(cp.localCandidateId).candidateType, remote: stats.get(cp.remoteCandidateId).candidateType };
        }
      });
      return out;
    });
    ctx.log(`${who} selected pair ${JSON.stringify(pair)}`);
    assert(pair && pair.local !== 'host', `${who}'s selected pair does not use a host candidate (${JSON.stringify(pair)})`);
  }
});

test('chromium without media permission and with our STUN stopped does not connect', async (ctx) => {
  // Learn a STUN address, then stop that server: the address is now dead.
  const first = await ctx.server();
  const deadStun = first.stunAddr;
  await first.stop();
  const server = await ctx.server({ stun: false, env: { SWITCHBOARD_STUN_ENABLED: 'false' } });
  const rtcConfig = { iceServers: [{ urls: `stun:${deadStun}` }] };
  const { a, b } = await connectPair(ctx, server, { grant: false, rtcConfig, room: 'nostun' });
  const LIMIT_MS = 8000;
  const t0 = Date.now();
  while (Date.now() - t0 < LIMIT_MS) {
    for (const p of [a, b]) {
      const s = await agentState(p);
      assert(s.pc !== 'connected' && s.dc !== 'open', `no connection without STUN (pc ${s.pc}, dc ${s.dc})`);
    }
    await sleep(250);
  }
  for (const [who, p] of [['alice', a], ['bob', b]]) {
    const s = await agentState(p);
    ctx.log(`${who} after ${LIMIT_MS} ms: pc ${s.pc}, candidates ${s.local.join(' | ') || 'none'}`);
    assert(!s.local.some((c) => / typ srflx /.test(c)), `${who} has no srflx candidate`);
  }
});

test('demo page: join, video, chat, 1 MiB file', async (ctx) => {
  const server = await ctx.server();
  const room = 'demo-e2e';
  const a = await ctx.page(server, 'demo-alice', { url: `/#${room}` });
  const b = await ctx.page(server, 'demo-bob', { url: `/#${room}` });
  for (const [p, name] of [[a, 'alice'], [b, 'bob']]) {
    await p.fill('#name', name);
    await p.click('#join');
    await p.waitForSelector('#leave:not([disabled])');
  }
  for (const p of [a, b]) {
    await p.waitForSelector('#peers .dc-state[data-state=open]', { timeout: 15000 });
    await p.waitForSelector('#peers .pc-state[data-state=connected]', { timeout: 15000 });
  }
  // Video both ways with the fake camera.
  await a.click('#camera');
  await b.click('#camera');
  for (const p of [a, b]) {
    await p.waitForFunction(() => {
      const v = document.querySelector('#videos .tile:not(.local) video');
      return v && v.videoWidth > 0 && v.currentTime > 0;
    }, null, { timeout: 20000 });
  }
  // Chat both ways.
  await a.fill('#chat-input', 'hello bob, this is alice');
  await a.click('#chat-send');
  await b.waitForFunction(() => [...document.querySelectorAll('#chat-log li.theirs')].some((li) => li.textContent.includes('hello bob, this is alice')));
  await b.fill('#chat-input', 'hi alice!');
  await b.click('#chat-send');
  await a.waitForFunction(() => [...document.querySelectorAll('#chat-log li.theirs')].some((li) => li.textContent.includes('hi alice!')));
  // A 1 MiB file from alice to bob.
  const bytes = randomBytes(1024 * 1024);
  const sha = createHash('sha256').update(bytes).digest('hex');
  await a.setInputFiles('#file-input', { name: 'random.bin', mimeType: 'application/octet-stream', buffer: bytes });
  await a.click('#file-send');
  const got = await waitFor(() => b.evaluate(() => {
    const r = window.demo.received[0];
    return r ? { name: r.name, size: r.size, sha256: r.sha256 } : null;
  }), 30000, 'bob receives the file');
  ctx.log(`file received: ${JSON.stringify(got)}`);
  assert(got.name === 'random.bin' && got.size === bytes.length, `name and size (${got.name}, ${got.size})`);
  assert(got.sha256 === sha, `SHA-256 matches (${got.sha256} vs ${sha})`);
  // Recompute from the received Blob itself, not from the page's own bookkeeping.
  const again = await b.evaluate(async () => {
    const d = await crypto.subtle.digest('SHA-256', await window.demo.received[0].blob.arrayBuffer());
    return [...new Uint8Array(d)].map((x) => x.toString(16).padStart(2, '0')).join('');
  });
  assert(again === sha, 'SHA-256 of the received Blob matches');
  await b.waitForFunction(() => document.querySelector('#transfers li.done'));
  await a.waitForFunction(() => document.querySelector('#transfers li.done'));
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  await sleep(300);
  await b.screenshot({ path: path.join(ARTIFACTS_DIR, 'demo.png'), fullPage: true });
  await a.screenshot({ path: path.join(ARTIFACTS_DIR, 'demo-sender.png'), fullPage: true });
  ctx.log(`screenshots in ${ARTIFACTS_DIR}`);
});

/**
 * Drops alice's WebSocket (not her RTCPeerConnection) and checks what happens after.
 * `resumes`: the server keeps her session (same id, frames sent meanwhile delivered);
 * otherwise she gets a new session and rejoins the room.
 */
async function dropSignaling(ctx, { resumes }) {
  // A server that can resume is told not to (no grace period) for the "no resume" case.
  const noGrace = !resumes && SERVER_RESUMES;
  const server = await ctx.server(noGrace ? { env: { SWITCHBOARD_SIGNAL_RESUME_GRACE_MS: '0' } } : {});
  // A slow first reconnect leaves a window in which bob signals to alice's old session.
  const clientOptions = { backoff: { delayMsInitial: 2000, jitter: 0 } };
  const { a, b } = await connectPair(ctx, server, { room: 'resume', clientOptions });
  await waitFor(async () => {
    const [sa, sb] = [await agentState(a), await agentState(b)];
    return sa.pc === 'connected' && sb.pc === 'connected' && sa.received.includes('hello from bob') && sb.received.includes('hello from alice');
  }, 15000, 'connected pair');
  const oldId = (await agentState(a)).id;
  const closedAt = await a.evaluate(() => { window.agent.client._ws.close(); return Date.now(); });
  await waitFor(async () => (await agentState(a)).events.some((e) => e.t === 'disconnected'), 5000, 'alice sees the drop');
  // Bob signals to alice while she is away.
  const sent = ['while-away-1', 'while-away-2', 'while-away-3'];
  await b.evaluate(({ id, sent }) => { for (const s of sent) window.agent.client.sendMessage(id, { s }); }, { id: oldId, sent });
  const stillAway = await a.evaluate(() => window.agent.client.state);
  assert(stillAway === 'reconnecting', `alice was still away when bob sent (state ${stillAway})`);

  if (resumes) {
    await waitFor(async () => (await agentState(a)).events.some((e) => e.t === 'resumed'), 10000, 'alice resumes');
    const sa = await agentState(a);
    assert(sa.id === oldId, `same session id after resume (${sa.id} vs ${oldId})`);
    await waitFor(async () => (await agentState(a)).events.filter((e) => e.t === 'message').length === sent.length, 5000, 'frames sent meanwhile arrive');
    const got = (await agentState(a)).events.filter((e) => e.t === 'message').map((e) => e.d.data.s);
    assert(JSON.stringify(got) === JSON.stringify(sent), `in order: ${got}`);
    const sb = await agentState(b);
    assert(!sb.events.some((e) => e.t === 'peer-left'), 'bob never saw alice leave');
  } else {
    const ev = await waitFor(async () => (await agentState(a)).events.find((e) => e.t === 'new-session'), 10000, 'alice reconnects as a new session');
    ctx.log(`new-session ${JSON.stringify(ev.d)} after ${ev.at - closedAt} ms`);
    assert(ev.d.previousId === oldId && ev.d.id !== oldId, 'a new id');
    assert(ev.d.rooms.includes('resume') && ev.d.failed.length === 0, 'rejoined the room');
    assert(ev.d.reason === 'session-expired', `resume answered session-expired (${ev.d.reason})`);
    await waitFor(async () => {
      const sb = await agentState(b);
      return sb.events.some((e) => e.t === 'peer-left' && e.d.id === oldId)
        && sb.events.some((e) => e.t === 'peer-joined' && e.d.id === ev.d.id);
    }, 5000, 'bob sees the old session leave and the new one join');
    const errs = (await agentState(b)).events.filter((e) => e.t === 'server-error');
    assert(errs.some((e) => e.d.code === 'unknown-target' && e.d.target === oldId), 'bob\'s frames to the old session: unknown-target');
    const sa = await agentState(a);
    assert(!sa.events.some((e) => e.t === 'message'), 'nothing delivered to the new session');
  }
  // The media path never depended on signaling: connected throughout, channel still works.
  for (const [who, p] of [['alice', a], ['bob', b]]) {
    const s = await agentState(p);
    assert(s.pc === 'connected', `${who}'s RTCPeerConnection is connected (${s.pc})`);
    const after = s.states.slice(s.states.indexOf('connected'));
    assert(after.every((x) => x === 'connected'), `${who} stayed connected (${s.states})`);
  }
  await a.evaluate(() => window.agent.channel.send('after reconnect from alice'));
  await b.evaluate(() => window.agent.channel.send('after reconnect from bob'));
  await waitFor(async () => (await agentState(b)).received.includes('after reconnect from alice')
    && (await agentState(a)).received.includes('after reconnect from bob'), 5000, 'data channel still carries messages');
  // Signaling works again too, to the current id.
  const ping = await a.evaluate(() => window.agent.client.ping().then((f) => f.type));
  assert(ping === 'pong', 'ping after reconnect');
}

test('signaling drop without resume: new session, rooms rejoined, call survives', (ctx) => dropSignaling(ctx, { resumes: false }));
if (SERVER_RESUMES) {
  test('signaling drop with resume: same session, queued frames delivered, call survives', (ctx) => dropSignaling(ctx, { resumes: true }));
}

// ---------------------------------------------------------------------------------------

async function preflight() {
  const missing = [];
  if (!existsSync(SWITCHBOARD_BIN)) missing.push(`switchboard binary ${SWITCHBOARD_BIN} (cargo build, or set SWITCHBOARD_BIN)`);
  if (!existsSync(CHROMIUM_BIN)) missing.push(`${CHROMIUM_BIN} (apt-get install chromium)`);
  const { spawnSync } = await import('node:child_process');
  const py = spawnSync(PYTHON_BIN, ['-c', 'import aiortc, websockets; assert aiortc.__version__ == "1.16.0", aiortc.__version__'], { encoding: 'utf8' });
  if (py.status !== 0) missing.push(`aiortc 1.16.0 for ${PYTHON_BIN} (pip install -r tests/e2e/requirements.txt): ${py.stderr.trim().split('\n').pop()}`);
  try { await import('node-datachannel'); } catch (e) { missing.push(`npm node-datachannel (npm ci in tests/e2e): ${e.message}`); }
  try { await import('ws'); } catch (e) { missing.push(`npm ws (npm ci in tests/e2e): ${e.message}`); }
  return missing;
}

async function main() {
  const filter = process.argv[2];
  const t0 = Date.now();
  const missing = await preflight();
  if (missing.length) {
    console.log(`missing tools:\n  ${missing.join('\n  ')}`);
    console.log(`0 passed, ${cases.length} failed`);
    process.exit(1);
  }
  let passed = 0;
  let failed = 0;
  for (const c of cases) {
    if (filter && !c.name.includes(filter)) continue;
    const ctx = new Ctx(c.name);
    const started = Date.now();
    let error = null;
    try {
      await withTimeout(c.fn(ctx), CASE_MS_MAX, `case "${c.name}"`);
    } catch (e) {
      error = e;
    }
    await ctx.close();
    const ms = Date.now() - started;
    if (!error) {
      passed++;
      console.log(`ok   ${c.name} (${ms} ms)`);
      if (process.env.E2E_VERBOSE) console.log(ctx.logs.map((l) => `     ${l}`).join('\n'));
    } else {
      failed++;
      console.log(`FAIL ${c.name} (${ms} ms)\n     ${error.stack || error}`);
      console.log('     --- browser console and test log ---');
      console.log(ctx.logs.map((l) => `     ${l}`).join('\n'));
      for (const p of ctx.peers) console.log(`     --- ${p.label} output ---\n${p.lines.map((l) => `     ${l}`).join('\n')}`);
      for (const s of ctx.servers || []) console.log(`     --- switchboard log (last 15 lines) ---\n${s.lines.slice(-15).map((l) => `     ${l}`).join('\n')}`);
    }
  }
  for (const b of browsers.values()) await withTimeout(b.then((x) => x.close()), 10000, 'browser close').catch(() => {});
  console.log(`e2e: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.log(`runner error: ${e.stack || e}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
});
