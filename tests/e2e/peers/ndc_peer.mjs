// A node-datachannel peer that speaks switchboard signaling protocol v1 over a WebSocket.
//
// Usage: node ndc_peer.mjs WS_URL ROOM NAME offer|answer PEER_NAME
//
// Joins ROOM as {name: NAME}. With `offer` it waits for a member named PEER_NAME and offers
// it a data channel "chat"; with `answer` it waits for an offer. Once the channel is open it
// sends "hello from NAME"; on the first "hello from ..." it receives it prints
// `RESULT {"ok":true,"received":...}` and stays up until terminated (at most a minute).
import nodeDataChannel from 'node-datachannel';
import WebSocket from 'ws';

const LINGER_MS = 60000;
const [url, room, name, role, peerName] = process.argv.slice(2);
if (!peerName || !['offer', 'answer'].includes(role)) {
  console.error('usage: ndc_peer.mjs WS_URL ROOM NAME offer|answer PEER_NAME');
  process.exit(2);
}
const log = (...a) => console.error(...a);

const ws = new WebSocket(url);
const send = (frame) => ws.send(JSON.stringify(frame));
let pc = null;
let target = null;
let remoteSet = false;
const earlyCandidates = [];
let reported = false;

const lifetime = setTimeout(() => { log('linger over'); shutdown(1); }, LINGER_MS);

function shutdown(code) {
  clearTimeout(lifetime);
  try { pc?.close(); } catch { /* closed */ }
  try { ws.close(); } catch { /* closed */ }
  nodeDataChannel.cleanup();
  process.exit(code);
}
process.on('SIGTERM', () => shutdown(0));

function onChannel(dc) {
  const hello = () => dc.sendMessage(`hello from ${name}`);
  dc.onMessage((msg) => {
    const text = typeof msg === 'string' ? msg : Buffer.from(msg).toString();
    log('received', text);
    if (!reported && text.startsWith('hello from')) {
      reported = true;
      console.log(`RESULT ${JSON.stringify({ ok: true, received: text })}`);
    }
  });
  if (dc.isOpen()) hello(); else dc.onOpen(hello);
}

function makePc(peerId) {
  target = peerId;
  // bindAddress: the tests run in a loopback-only network namespace.
  pc = new nodeDataChannel.PeerConnection(name, { iceServers: [], bindAddress: '127.0.0.1' });
  pc.onLocalDescription((sdp, type) => send({ type: String(type).toLowerCase(), target, sdp }));
  pc.onLocalCandidate((candidate, mid) => {
    // node-datachannel gives SDP attribute lines ("a=candidate:..."); the wire form has no "a=".
    send({ type: 'ice-candidate', target, candidate: { candidate: candidate.replace(/^a=/, ''), sdpMid: mid } });
  });
  pc.onStateChange((s) => log('connection', s));
  pc.onDataChannel(onChannel);
}

function addCandidate(c) {
  const text = String(c.candidate || '').replace(/^a=/, '');
  if (!text) return;
  try { pc.addRemoteCandidate(text, c.sdpMid ?? '0'); } catch (e) { log('candidate rejected', e.message); }
}

function setRemote(sdp, type) {
  pc.setRemoteDescription(sdp, type);
  remoteSet = true;
  for (const c of earlyCandidates.splice(0)) addCandidate(c);
}

function startOffer(peerId) {
  makePc(peerId);
  onChannel(pc.createDataChannel('chat'));
}

ws.on('message', (raw) => {
  const f = JSON.parse(String(raw));
  switch (f.type) {
    case 'welcome':
      log('welcome', f.id);
      send({ type: 'join', room, meta: { name }, ref: 1 });
      break;
    case 'joined':
      if (role === 'offer' && !target) {
        const p = f.peers.find((x) => x.meta && x.meta.name === peerName);
        if (p) startOffer(p.id);
      }
      break;
    case 'peer-joined':
      if (role === 'offer' && !target && f.meta && f.meta.name === peerName) startOffer(f.id);
      break;
    case 'offer':
      if (role === 'answer' && !target) {
        makePc(f.from);
        setRemote(f.sdp, 'offer');
      }
      break;
    case 'answer':
      if (f.from === target) setRemote(f.sdp, 'answer');
      break;
    case 'ice-candidate':
      if (f.from !== target) break;
      if (remoteSet) addCandidate(f.candidate); else earlyCandidates.push(f.candidate);
      break;
    case 'error':
      log('server error', JSON.stringify(f));
      break;
    default:
  }
});
ws.on('error', (e) => { log('websocket error', e.message); shutdown(1); });
ws.on('close', () => { if (!reported) { log('websocket closed'); shutdown(1); } });
