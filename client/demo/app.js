// switchboard demo: rooms, peers, video call, chat and file transfer over RTCDataChannels.
// Plain ES module; everything goes through /v1/client.js.
import { SwitchboardClient, PeerLink } from '/v1/client.js';

/** Bytes per data-channel message of a file (well under every browser's SCTP limit). */
const FILE_CHUNK_BYTES = 16 * 1024;
/** Pause sending while this much is buffered; resume below the low-water mark. */
const FILE_BUFFERED_BYTES_MAX = 1024 * 1024;
const FILE_BUFFERED_BYTES_LOW = 256 * 1024;

const $ = (id) => document.getElementById(id);
const client = new SwitchboardClient();

/**
 * Everything the page knows about one remote session.
 * @typedef {{id: string, meta: any, link: PeerLink, chat: RTCDataChannel|null,
 *   file: RTCDataChannel|null, li: HTMLLIElement, tile: HTMLElement|null,
 *   incoming: any, sendChain: Promise<void>}} Peer
 */
/** @type {Map<string, Peer>} */
const peers = new Map();
let room = null;
let myName = '';
/** @type {MediaStream|null} */
let localStream = null;

/** State for tests and the curious: `window.demo`. */
const demo = { client, peers, received: [], sent: [], chat: [] };
window.demo = demo;

// ---- connection state ----

function showState() {
  const el = $('conn-state');
  el.textContent = client.state;
  el.dataset.state = client.state;
  $('session-id').textContent = client.id || '–';
}
client.addEventListener('state', showState);
client.addEventListener('open', showState);
client.addEventListener('resumed', () => { showState(); note('Reconnected; session resumed.'); });
client.addEventListener('new-session', (ev) => {
  showState();
  note('Reconnected as a new session; calls restart.');
  // The peers saw our old session leave: start every call again from this side.
  for (const p of [...peers.values()]) dropPeer(p.id);
  const r = client.rooms.get(room);
  if (r) for (const [id, meta] of r.peers) addPeer(id, meta, true);
});
client.addEventListener('disconnected', (ev) => note(`Signaling dropped (${ev.detail.code}); ${ev.detail.willReconnect ? 'reconnecting' : 'giving up'}.`));
client.addEventListener('server-error', (ev) => note(`Server: ${ev.detail.code} ${ev.detail.message || ''}`));

function note(text) {
  addChatLine({ system: true, text });
}

// ---- rooms and peers ----

$('name').value = localStorage.getItem('switchboard-demo-name') || `guest-${Math.random().toString(36).slice(2, 6)}`;
if (location.hash.length > 1) $('room').value = decodeURIComponent(location.hash.slice(1));

$('join-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const wanted = $('room').value.trim();
  myName = $('name').value.trim() || 'guest';
  localStorage.setItem('switchboard-demo-name', myName);
  $('join').disabled = true;
  try {
    if (client.state === 'idle' || client.state === 'closed') await client.connect();
    const joined = await client.join(wanted, { name: myName });
    room = wanted;
    location.hash = encodeURIComponent(room);
    $('room-status').textContent = `In room “${room}” as ${myName}.`;
    $('leave').disabled = false;
    $('room').disabled = true;
    $('name').disabled = true;
    // We are the newcomer: we call everyone already here.
    for (const p of joined.peers) addPeer(p.id, p.meta, true);
    renderPeers();
    setInputsEnabled(true);
  } catch (e) {
    $('room-status').textContent = `Could not join: ${e.message}`;
    $('join').disabled = false;
  }
});

$('leave').addEventListener('click', async () => {
  if (!room) return;
  try { await client.leave(room); } catch (e) { note(`leave: ${e.message}`); }
  for (const p of [...peers.values()]) dropPeer(p.id);
  room = null;
  $('room-status').textContent = 'Not in a room.';
  $('leave').disabled = true;
  $('join').disabled = false;
  $('room').disabled = false;
  $('name').disabled = false;
  setInputsEnabled(false);
});

client.addEventListener('peer-joined', (ev) => {
  if (ev.detail.room !== room) return;
  // The newcomer calls us; we only show it until its offer arrives.
  note(`${nameOf(ev.detail.meta)} joined.`);
  if (!peers.has(ev.detail.id)) addPeer(ev.detail.id, ev.detail.meta, false);
});
client.addEventListener('peer-left', (ev) => {
  if (ev.detail.room !== room) return;
  const p = peers.get(ev.detail.id);
  if (p) note(`${nameOf(p.meta)} left.`);
  dropPeer(ev.detail.id);
});
client.addEventListener('offer', (ev) => {
  const f = ev.detail;
  if (!room || peers.has(f.from)) return; // known peers: their PeerLink handles it
  const meta = client.rooms.get(room)?.peers.get(f.from);
  const p = addPeer(f.from, meta, false);
  p.link.handle(f);
});

function nameOf(meta) {
  return (meta && typeof meta.name === 'string' && meta.name) || 'someone';
}

/** Starts (or prepares for) a call with `id`; `initiator` creates the data channels. */
function addPeer(id, meta, initiator) {
  const existing = peers.get(id);
  if (existing && existing.link) return existing;
  const link = new PeerLink(client, id);
  /** @type {Peer} */
  const p = { id, meta, link, chat: null, file: null, li: null, tile: null, incoming: null, sendChain: Promise.resolve() };
  peers.set(id, p);
  link.addEventListener('state', () => renderPeers());
  link.addEventListener('error', (ev) => console.warn('peer link', id, ev.detail.error));
  link.addEventListener('datachannel', (ev) => attachChannel(p, ev.channel));
  link.addEventListener('track', (ev) => showRemoteTrack(p, ev));
  if (initiator) {
    attachChannel(p, link.pc.createDataChannel('chat'));
    attachChannel(p, link.pc.createDataChannel('file'));
  }
  if (localStream) {
    // Add media after the offer (if any) is applied, so we do not offer over it.
    queueMicrotask(() => p.link.handle({ type: 'noop' }).then(() => addLocalTracks(p)));
  }
  renderPeers();
  return p;
}

function dropPeer(id) {
  const p = peers.get(id);
  if (!p) return;
  peers.delete(id);
  p.link.close();
  if (p.tile) p.tile.remove();
  renderPeers();
}

function attachChannel(p, ch) {
  if (ch.label === 'chat') {
    p.chat = ch;
    ch.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      addChatLine({ from: nameOf(p.meta), text: String(m.text) });
    };
  } else if (ch.label === 'file') {
    p.file = ch;
    ch.binaryType = 'arraybuffer';
    ch.bufferedAmountLowThreshold = FILE_BUFFERED_BYTES_LOW;
    ch.onmessage = (ev) => onFileMessage(p, ev.data);
  }
  ch.onopen = ch.onclose = () => renderPeers();
}

function renderPeers() {
  const ul = $('peers');
  ul.textContent = '';
  if (peers.size === 0) {
    const li = document.createElement('li');
    li.className = 'muted empty';
    li.textContent = 'Nobody else here yet.';
    ul.append(li);
    return;
  }
  for (const p of peers.values()) {
    const li = document.createElement('li');
    li.dataset.peer = p.id;
    const pcState = p.link.pc.connectionState;
    const dcState = p.chat ? p.chat.readyState : 'none';
    li.innerHTML = '<span class="peer-name"></span> <code class="muted"></code>'
      + ' <span class="badge pc-state"></span> <span class="badge dc-state"></span>';
    li.querySelector('.peer-name').textContent = nameOf(p.meta);
    li.querySelector('code').textContent = p.id;
    const a = li.querySelector('.pc-state');
    a.textContent = `peer ${pcState}`;
    a.dataset.state = pcState;
    const b = li.querySelector('.dc-state');
    b.textContent = `data ${dcState}`;
    b.dataset.state = dcState;
    ul.append(li);
  }
}

function setInputsEnabled(on) {
  for (const id of ['chat-input', 'chat-send', 'file-input', 'file-send']) $(id).disabled = !on;
}

// ---- video ----

$('camera').addEventListener('click', async () => {
  if (localStream) {
    for (const t of localStream.getTracks()) t.stop();
    for (const p of peers.values()) {
      for (const s of p.link.pc.getSenders()) if (s.track) p.link.pc.removeTrack(s);
    }
    localStream = null;
    $('local-video').srcObject = null;
    $('camera').textContent = 'Start camera and microphone';
    $('camera-status').textContent = 'Camera off.';
    return;
  }
  try {
    localStream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: true });
  } catch (e) {
    $('camera-status').textContent = `No camera: ${e.message}`;
    return;
  }
  $('local-video').srcObject = localStream;
  $('camera').textContent = 'Stop camera';
  $('camera-status').textContent = 'Camera on.';
  for (const p of peers.values()) addLocalTracks(p);
});

function addLocalTracks(p) {
  if (!localStream) return;
  const have = new Set(p.link.pc.getSenders().map((s) => s.track));
  for (const t of localStream.getTracks()) if (!have.has(t)) p.link.pc.addTrack(t, localStream);
}

function showRemoteTrack(p, ev) {
  if (!p.tile) {
    p.tile = document.createElement('figure');
    p.tile.className = 'tile';
    p.tile.dataset.peer = p.id;
    const v = document.createElement('video');
    v.autoplay = true;
    v.playsInline = true;
    v.srcObject = new MediaStream();
    const cap = document.createElement('figcaption');
    cap.textContent = nameOf(p.meta);
    p.tile.append(v, cap);
    $('videos').append(p.tile);
  }
  const v = p.tile.querySelector('video');
  v.srcObject.addTrack(ev.track);
  ev.track.addEventListener('ended', () => v.srcObject.removeTrack(ev.track));
}

// ---- chat ----

$('chat-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = $('chat-input').value.trim();
  if (!text) return;
  let sent = 0;
  for (const p of peers.values()) {
    if (p.chat && p.chat.readyState === 'open') { p.chat.send(JSON.stringify({ text })); sent++; }
  }
  addChatLine({ from: 'you', text, mine: true, undelivered: sent === 0 });
  $('chat-input').value = '';
});

function addChatLine({ from, text, mine = false, system = false, undelivered = false }) {
  demo.chat.push({ from: from || null, text, system });
  const li = document.createElement('li');
  li.className = system ? 'system' : mine ? 'mine' : 'theirs';
  if (!system) {
    const who = document.createElement('b');
    who.textContent = from;
    li.append(who, ' ');
  }
  li.append(text);
  if (undelivered) li.append(' (nobody connected)');
  const log = $('chat-log');
  log.append(li);
  log.scrollTop = log.scrollHeight;
}

// ---- files ----

$('file-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const file = $('file-input').files[0];
  if (!file) return;
  for (const p of peers.values()) {
    if (p.file && p.file.readyState === 'open') {
      // One transfer at a time per channel: the receiver reads start, chunks, end in order.
      p.sendChain = p.sendChain.then(() => sendFile(p, file)).catch((e) => note(`send failed: ${e.message}`));
    }
  }
  $('file-input').value = '';
});

function waitBufferedLow(ch) {
  if (ch.bufferedAmount <= FILE_BUFFERED_BYTES_MAX) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = () => { ch.removeEventListener('bufferedamountlow', done); ch.removeEventListener('close', fail); resolve(); };
    const fail = () => { ch.removeEventListener('bufferedamountlow', done); reject(new Error('channel closed')); };
    ch.addEventListener('bufferedamountlow', done);
    ch.addEventListener('close', fail);
  });
}

async function sendFile(p, file) {
  const ch = p.file;
  const id = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const row = transferRow(`→ ${file.name} to ${nameOf(p.meta)}`, file.size);
  ch.send(JSON.stringify({ kind: 'start', id, name: file.name, size: file.size, mime: file.type }));
  let offset = 0;
  while (offset < file.size) {
    await waitBufferedLow(ch);
    const chunk = await file.slice(offset, offset + FILE_CHUNK_BYTES).arrayBuffer();
    ch.send(chunk);
    offset += chunk.byteLength;
    row.progress(offset);
  }
  ch.send(JSON.stringify({ kind: 'end', id }));
  row.done('sent');
  demo.sent.push({ name: file.name, size: file.size, to: p.id });
}

async function onFileMessage(p, data) {
  if (typeof data === 'string') {
    let m;
    try { m = JSON.parse(data); } catch { return; }
    if (m.kind === 'start') {
      p.incoming = { ...m, chunks: [], bytes: 0, row: transferRow(`← ${m.name} from ${nameOf(p.meta)}`, m.size) };
    } else if (m.kind === 'end' && p.incoming && p.incoming.id === m.id) {
      const inc = p.incoming;
      p.incoming = null;
      const blob = new Blob(inc.chunks, { type: inc.mime || 'application/octet-stream' });
      const digest = await crypto.subtle.digest('SHA-256', await blob.arrayBuffer());
      const sha256 = [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
      const ok = blob.size === inc.size;
      demo.received.push({ name: inc.name, size: blob.size, expected: inc.size, sha256, blob, from: p.id });
      inc.row.done(ok ? `received, SHA-256 ${sha256.slice(0, 16)}…` : `size mismatch: ${blob.size} of ${inc.size}`, blob, inc.name);
    }
    return;
  }
  if (!p.incoming) return;
  p.incoming.chunks.push(data);
  p.incoming.bytes += data.byteLength;
  p.incoming.row.progress(p.incoming.bytes);
}

function transferRow(label, size) {
  const li = document.createElement('li');
  li.innerHTML = '<span class="label"></span> <progress max="1" value="0"></progress> <span class="info muted"></span>';
  li.querySelector('.label').textContent = label;
  const bar = li.querySelector('progress');
  const info = li.querySelector('.info');
  bar.max = Math.max(size, 1);
  info.textContent = `0 / ${fmtBytes(size)}`;
  $('transfers').prepend(li);
  return {
    progress(n) { bar.value = n; info.textContent = `${fmtBytes(n)} / ${fmtBytes(size)}`; },
    done(text, blob, name) {
      bar.value = bar.max;
      info.textContent = `${fmtBytes(size)} ${text}`;
      li.classList.add('done');
      if (blob) {
        const a = document.createElement('a');
        a.href = URL.createObjectURL(blob);
        a.download = name;
        a.textContent = 'save';
        li.append(' ', a);
      }
    },
  };
}

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

showState();
client.connect().catch((e) => note(`connect: ${e.message}`));
