// switchboard browser client: signaling protocol v1 (docs/protocol.md) and a
// perfect-negotiation helper for RTCPeerConnection. A dependency-free ES module; the server
// serves it at /v1/client.js. See docs/client.md for the API.

/**
 * A frame of signaling protocol v1 as received from the server.
 * @typedef {{type: string, from?: string, ref?: any, [field: string]: any}} Frame
 */

/**
 * @typedef {object} ReconnectOptions
 * @property {number} [delayMsInitial=250] Delay before the first reconnect attempt.
 * @property {number} [delayMsMax=8000] Ceiling of the exponential back-off.
 * @property {number} [factor=2] Multiplier per failed attempt.
 * @property {number} [jitter=0.2] Random spread (fraction) applied to each delay.
 * @property {number} [attemptsMax=Infinity] Attempts before giving up (state `closed`).
 */

/**
 * @typedef {object} ClientOptions
 * @property {boolean} [reconnect=true] Reconnect with back-off after an unexpected drop.
 * @property {ReconnectOptions} [backoff] Back-off tuning.
 * @property {number} [requestTimeoutMs=10000] How long `join`, `leave`, `ping` wait for a reply.
 * @property {number} [connectTimeoutMs=10000] How long one connection attempt waits for `welcome`.
 * @property {number} [sendQueueMax=256] Frames kept while disconnected; past it `send*` throws.
 * @property {typeof WebSocket} [WebSocket] WebSocket constructor (defaults to the global one).
 */

/**
 * @typedef {'idle'|'connecting'|'open'|'reconnecting'|'closed'} ClientState
 */

/** The default signaling URL: `/v1/signal` on the server this module was loaded from. */
function defaultUrl() {
  const u = new URL('/v1/signal', import.meta.url);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.href;
}

/**
 * An `error` frame from the server (or a local failure), as a rejected Promise's reason.
 * `code` is the protocol error code (`room-full`, `not-in-room`, ...) or one of the local
 * codes `timeout`, `disconnected`, `closed`.
 */
export class SwitchboardError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {Frame} [frame] The server's `error` frame, when there is one.
   */
  constructor(code, message, frame) {
    super(`${code}: ${message}`);
    this.name = 'SwitchboardError';
    /** @type {string} */
    this.code = code;
    /** @type {Frame|undefined} */
    this.frame = frame;
  }
}

/**
 * The ICE servers a browser accepts. RFC 7064 `stun:` / `stuns:` URIs have no query part, and
 * Chromium refuses to construct an RTCPeerConnection over one such URL (e.g.
 * `stun:host:3478?transport=tcp`), so those URLs are dropped, as are entries left empty.
 * @param {any} list
 * @returns {RTCIceServer[]}
 */
export function usableIceServers(list) {
  if (!Array.isArray(list)) return [];
  const out = [];
  for (const s of list) {
    if (!s || s.urls === undefined) continue;
    const urls = (Array.isArray(s.urls) ? s.urls : [s.urls])
      .filter((u) => typeof u === 'string' && !(/^stuns?:/i.test(u) && u.includes('?')));
    if (urls.length) out.push({ ...s, urls });
  }
  return out;
}

/** Relayed frame types: each is dispatched as an event of the same name. */
const RELAYED = ['offer', 'answer', 'ice-candidate', 'end-of-candidates', 'message', 'broadcast'];

/**
 * A signaling session with a switchboard server.
 *
 * Events (all `CustomEvent`s; the payload is in `event.detail`):
 * - `state` `{state, previous}`: the connection state changed.
 * - `welcome` {@link Frame}: a connection was accepted (every connection, also reconnects).
 * - `open` `{id, iceServers}`: the session is ready (first connect).
 * - `disconnected` `{code, reason, willReconnect}`: the WebSocket dropped.
 * - `resumed` `{id, delivered}`: a reconnect took the old session over (same id, rooms, and
 *   the frames queued meanwhile follow).
 * - `new-session` `{previousId, id, reason, rooms, failed}`: a reconnect could not resume and
 *   the client rejoined its rooms as a fresh session (peers saw it leave and join again).
 * - `peer-joined` `{room, id, meta}`, `peer-left` `{room, id}`.
 * - `offer`, `answer`, `ice-candidate`, `end-of-candidates`, `message`, `broadcast`: the
 *   relayed {@link Frame} (with `from`).
 * - `signal` {@link Frame}: every relayed frame, whatever its type.
 * - `server-error` {@link Frame}: an `error` frame no pending request claimed (e.g.
 *   `unknown-target` for a relay).
 * - `frame` {@link Frame}: every frame received, before any other event.
 */
export class SwitchboardClient extends EventTarget {
  /**
   * @param {string} [url] `ws://host:port/v1/signal`; defaults to the server that served this file.
   * @param {ClientOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    /** @type {string} */
    this.url = url || defaultUrl();
    this.options = {
      reconnect: options.reconnect ?? true,
      requestTimeoutMs: options.requestTimeoutMs ?? 10000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10000,
      sendQueueMax: options.sendQueueMax ?? 256,
      backoff: {
        delayMsInitial: 250,
        delayMsMax: 8000,
        factor: 2,
        jitter: 0.2,
        attemptsMax: Infinity,
        ...(options.backoff || {}),
      },
    };
    this._WebSocket = options.WebSocket || globalThis.WebSocket;
    /** @type {ClientState} */
    this.state = 'idle';
    /** Our session id (changes only when a reconnect could not resume). @type {string|null} */
    this.id = null;
    /** @type {string|null} */
    this._resumeToken = null;
    /** ICE servers from the latest `welcome`, ready for `new RTCPeerConnection`. @type {RTCIceServer[]} */
    this.iceServers = [];
    /** @type {number|null} */
    this.heartbeatMs = null;
    /**
     * The rooms we are in: room → {meta, peers: Map<id, meta>}.
     * @type {Map<string, {meta: any, peers: Map<string, any>}>}
     */
    this.rooms = new Map();
    /** @type {WebSocket|null} */
    this._ws = null;
    this._refNext = 1;
    /** @type {Map<number, {resolve: Function, reject: Function, timer: any, expect: string}>} */
    this._pending = new Map();
    /** Frames sent while not connected, flushed once the session is ready. @type {string[]} */
    this._queue = [];
    this._attempt = 0;
    this._reconnectTimer = null;
    this._connectWaiters = [];
    /** True between a reconnect's `welcome` and the end of resume/rejoin. */
    this._restoring = false;
  }

  /**
   * Opens the connection; resolves with the first `welcome` frame.
   * @returns {Promise<Frame>}
   */
  connect() {
    if (this.state === 'open' && this._welcome) return Promise.resolve(this._welcome);
    const p = new Promise((resolve, reject) => this._connectWaiters.push({ resolve, reject }));
    if (this.state === 'idle' || this.state === 'closed') {
      this._attempt = 0;
      this._open(false);
    }
    return p;
  }

  /** Closes the connection for good (no reconnect); pending requests reject with `closed`. */
  close() {
    this._setState('closed');
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
      try { ws.close(1000, 'bye'); } catch { /* already closed */ }
    }
    this._failPending('closed', 'the client was closed');
    this._queue.length = 0;
    for (const w of this._connectWaiters.splice(0)) w.reject(new SwitchboardError('closed', 'the client was closed'));
  }

  /**
   * Joins `room`; resolves with the `joined` frame (its `peers` are the members already there),
   * rejects with a {@link SwitchboardError} carrying the server's `error` frame.
   * @param {string} room
   * @param {any} [meta] Shown to the other members (`peer-joined`, `joined.peers`).
   * @returns {Promise<Frame>}
   */
  async join(room, meta) {
    const msg = { type: 'join', room };
    if (meta !== undefined) msg.meta = meta;
    const joined = await this._request(msg, 'joined');
    this._trackJoined(room, meta, joined);
    return joined;
  }

  /**
   * Leaves `room`; resolves with the `left` frame.
   * @param {string} room
   * @returns {Promise<Frame>}
   */
  async leave(room) {
    const left = await this._request({ type: 'leave', room }, 'left');
    this.rooms.delete(room);
    return left;
  }

  /**
   * Round trip to the server; resolves with the `pong` frame.
   * @returns {Promise<Frame>}
   */
  ping() {
    return this._request({ type: 'ping' }, 'pong');
  }

  /** @param {string} target @param {string} sdp */
  sendOffer(target, sdp) { this.send({ type: 'offer', target, sdp }); }

  /** @param {string} target @param {string} sdp */
  sendAnswer(target, sdp) { this.send({ type: 'answer', target, sdp }); }

  /**
   * Sends an ICE candidate, or `end-of-candidates` when `candidate` is null (as
   * `RTCPeerConnection.onicecandidate` gives it).
   * @param {string} target
   * @param {RTCIceCandidateInit|RTCIceCandidate|null} candidate
   */
  sendCandidate(target, candidate) {
    if (!candidate || !candidate.candidate) {
      this.send({ type: 'end-of-candidates', target });
      return;
    }
    const c = typeof candidate.toJSON === 'function' ? candidate.toJSON() : candidate;
    this.send({ type: 'ice-candidate', target, candidate: c });
  }

  /**
   * Sends application data to one session.
   * @param {string} target @param {any} data
   */
  sendMessage(target, data) { this.send({ type: 'message', target, data }); }

  /**
   * Sends application data to every other member of `room`.
   * @param {string} room @param {any} data
   */
  broadcast(room, data) { this.send({ type: 'broadcast', room, data }); }

  /**
   * Sends any protocol frame. While reconnecting the frame is queued (up to
   * `sendQueueMax`) and sent once the session is back.
   * @param {object} frame
   */
  send(frame) {
    const text = JSON.stringify(frame);
    if (this.state === 'closed' || this.state === 'idle') {
      throw new SwitchboardError('closed', 'not connected: call connect() first');
    }
    if (this.state === 'open' && !this._restoring && this._ws && this._ws.readyState === 1) {
      this._ws.send(text);
      return;
    }
    if (this._queue.length >= this.options.sendQueueMax) {
      throw new SwitchboardError('queue-full', `${this._queue.length} frames wait for the connection`);
    }
    this._queue.push(text);
  }

  // ---- internals ----

  _setState(state) {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this._emit('state', { state, previous });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** One connection attempt. `isReconnect`: a session existed before. */
  _open(isReconnect) {
    this._setState(isReconnect ? 'reconnecting' : 'connecting');
    let ws;
    try {
      ws = new this._WebSocket(this.url);
    } catch (e) {
      this._onDrop(1006, String(e));
      return;
    }
    this._ws = ws;
    this._welcome = null;
    const timer = setTimeout(() => {
      if (this._ws === ws && !this._welcomeSeen) { try { ws.close(); } catch { /* ignore */ } this._onDrop(1006, 'no welcome in time'); }
    }, this.options.connectTimeoutMs);
    this._welcomeSeen = false;
    ws.onmessage = (ev) => {
      if (this._ws !== ws) return;
      let frame;
      try { frame = JSON.parse(ev.data); } catch { return; }
      if (frame && frame.type === 'welcome') { this._welcomeSeen = true; clearTimeout(timer); }
      this._onFrame(frame, isReconnect);
    };
    ws.onclose = (ev) => {
      clearTimeout(timer);
      if (this._ws !== ws) return;
      this._onDrop(ev.code, ev.reason);
    };
    ws.onerror = () => { /* onclose follows and handles it */ };
  }

  _onDrop(code, reason) {
    this._ws = null;
    this._restoring = false;
    this._failPending('disconnected', `the connection dropped (${code})`);
    if (this.state === 'closed') return;
    const hadSession = this.id !== null;
    const b = this.options.backoff;
    const willReconnect = this.options.reconnect && this._attempt < b.attemptsMax;
    this._emit('disconnected', { code, reason, willReconnect });
    if (!willReconnect) {
      this._setState('closed');
      for (const w of this._connectWaiters.splice(0)) w.reject(new SwitchboardError('disconnected', `connection failed (${code})`));
      return;
    }
    this._setState('reconnecting');
    const base = Math.min(b.delayMsMax, b.delayMsInitial * Math.pow(b.factor, this._attempt));
    const delay = Math.max(0, base * (1 + b.jitter * (2 * Math.random() - 1)));
    this._attempt += 1;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = setTimeout(() => { this._reconnectTimer = null; this._open(hadSession); }, delay);
  }

  _failPending(code, message) {
    for (const [ref, p] of this._pending) {
      clearTimeout(p.timer);
      this._pending.delete(ref);
      p.reject(new SwitchboardError(code, message));
    }
  }

  /**
   * Sends `msg` with a fresh `ref` and waits for the reply of type `expect` or an `error`.
   * Bypasses the send queue: requests are answered by the current connection only.
   */
  _request(msg, expect, { direct = false } = {}) {
    return new Promise((resolve, reject) => {
      const ws = this._ws;
      const ready = ws && ws.readyState === 1 && (direct || (this.state === 'open' && !this._restoring));
      if (!ready) {
        reject(new SwitchboardError('disconnected', 'not connected'));
        return;
      }
      const ref = this._refNext++;
      const timer = setTimeout(() => {
        this._pending.delete(ref);
        reject(new SwitchboardError('timeout', `no ${expect} within ${this.options.requestTimeoutMs} ms`));
      }, this.options.requestTimeoutMs);
      this._pending.set(ref, { resolve, reject, timer, expect });
      ws.send(JSON.stringify({ ...msg, ref }));
    });
  }

  _trackJoined(room, meta, joined) {
    const peers = new Map();
    for (const p of joined.peers || []) peers.set(p.id, p.meta);
    this.rooms.set(room, { meta, peers });
  }

  _onFrame(frame, isReconnect) {
    if (!frame || typeof frame.type !== 'string') return;
    this._emit('frame', frame);
    if (frame.type === 'welcome') {
      this._onWelcome(frame, isReconnect);
      return;
    }
    if (typeof frame.ref === 'number' && this._pending.has(frame.ref)) {
      const p = this._pending.get(frame.ref);
      if (frame.type === 'error' || frame.type === p.expect) {
        this._pending.delete(frame.ref);
        clearTimeout(p.timer);
        if (frame.type === 'error') p.reject(new SwitchboardError(frame.code, frame.message || frame.code, frame));
        else p.resolve(frame);
        return;
      }
    }
    switch (frame.type) {
      case 'peer-joined': {
        const r = this.rooms.get(frame.room);
        if (r) r.peers.set(frame.id, frame.meta);
        this._emit('peer-joined', { room: frame.room, id: frame.id, meta: frame.meta });
        return;
      }
      case 'peer-left': {
        const r = this.rooms.get(frame.room);
        if (r) r.peers.delete(frame.id);
        this._emit('peer-left', { room: frame.room, id: frame.id });
        return;
      }
      case 'error':
        this._emit('server-error', frame);
        return;
      case 'pong':
      case 'joined':
      case 'left':
        return; // replies to requests that timed out
      default:
        if (frame.from !== undefined || RELAYED.includes(frame.type)) {
          this._emit('signal', frame);
          this._emit(frame.type, frame);
        }
    }
  }

  _onWelcome(frame, isReconnect) {
    this._welcome = frame;
    this.iceServers = usableIceServers(frame.iceServers);
    this.heartbeatMs = frame.heartbeatMs ?? null;
    this._emit('welcome', frame);
    if (!isReconnect || this.id === null) {
      this.id = frame.id;
      this._resumeToken = frame.resume;
      this._attempt = 0;
      this._setState('open');
      this._flushQueue();
      this._emit('open', { id: this.id, iceServers: this.iceServers });
      for (const w of this._connectWaiters.splice(0)) w.resolve(frame);
      return;
    }
    this._restore(frame);
  }

  /** After a reconnect: try to resume the old session, else rejoin the rooms as a new one. */
  async _restore(welcome) {
    const ws = this._ws;
    this._restoring = true;
    this._setState('open');
    const previousId = this.id;
    let resumed = null;
    let reason = 'no-resume-token';
    if (this._resumeToken) {
      try {
        resumed = await this._request({ type: 'resume', id: previousId, resume: this._resumeToken }, 'resumed', { direct: true });
      } catch (e) {
        if (this._ws !== ws) return; // dropped again; the next attempt starts over
        reason = e.code || 'error';
      }
    }
    if (this._ws !== ws) return;
    this._attempt = 0;
    if (resumed) {
      if (typeof resumed.resume === 'string') this._resumeToken = resumed.resume;
      this._restoring = false;
      this._flushQueue();
      this._emit('resumed', { id: this.id, delivered: resumed.delivered ?? 0 });
      return;
    }
    // A fresh session: the old one is gone, peers saw it leave.
    this.id = welcome.id;
    this._resumeToken = welcome.resume;
    const rooms = [];
    const failed = [];
    const old = new Map(this.rooms);
    this.rooms.clear();
    for (const [room, { meta, peers: oldPeers }] of old) {
      const msg = { type: 'join', room };
      if (meta !== undefined) msg.meta = meta;
      try {
        const joined = await this._request(msg, 'joined', { direct: true });
        this._trackJoined(room, meta, joined);
        rooms.push(room);
        const now = this.rooms.get(room).peers;
        for (const id of oldPeers.keys()) if (!now.has(id)) this._emit('peer-left', { room, id });
        for (const [id, m] of now) if (!oldPeers.has(id)) this._emit('peer-joined', { room, id, meta: m });
      } catch (e) {
        if (this._ws !== ws) return;
        failed.push({ room, code: e.code });
        for (const id of oldPeers.keys()) this._emit('peer-left', { room, id });
      }
    }
    this._restoring = false;
    this._flushQueue();
    this._emit('new-session', { previousId, id: this.id, reason, rooms, failed });
  }

  _flushQueue() {
    while (this._queue.length && this._ws && this._ws.readyState === 1) {
      this._ws.send(this._queue.shift());
    }
  }
}

/**
 * @typedef {object} PeerLinkOptions
 * @property {boolean} [polite] The polite side yields on an offer collision. Default: the
 *   side with the greater session id is polite, so two links always disagree.
 * @property {RTCConfiguration} [rtcConfig] Extra RTCPeerConnection settings; `iceServers`
 *   defaults to the ones the server sent in `welcome`.
 */

/**
 * One RTCPeerConnection to one remote session, negotiated with the "perfect negotiation"
 * pattern: either side may add tracks or channels at any time; when both offer at once the
 * polite side rolls its offer back and answers, the impolite side ignores the other offer.
 *
 * Events: `track` (RTCTrackEvent), `datachannel` (RTCDataChannelEvent), `state`
 * `{connectionState, iceConnectionState, signalingState}`, `error` `{error}`.
 */
export class PeerLink extends EventTarget {
  /**
   * @param {SwitchboardClient} client
   * @param {string} peerId The remote session id.
   * @param {PeerLinkOptions} [options]
   */
  constructor(client, peerId, options = {}) {
    super();
    this.client = client;
    /** The remote session id (see {@link PeerLink#retarget}). @type {string} */
    this.peerId = peerId;
    /** @type {boolean} */
    this.polite = options.polite ?? (String(client.id) > String(peerId));
    const config = { iceServers: client.iceServers, ...(options.rtcConfig || {}) };
    /** @type {RTCPeerConnection} */
    this.pc = new RTCPeerConnection(config);
    this._makingOffer = false;
    this._ignoreOffer = false;
    this._settingRemoteAnswer = false;
    this._chain = Promise.resolve();
    this._closed = false;

    this.pc.onnegotiationneeded = () => this._negotiate();
    this.pc.onicecandidate = ({ candidate }) => {
      if (this._closed) return;
      try { client.sendCandidate(this.peerId, candidate); } catch (error) { this._fail(error); }
    };
    this.pc.ontrack = (ev) => this.dispatchEvent(new RTCTrackEvent('track', ev));
    this.pc.ondatachannel = (ev) => this.dispatchEvent(new RTCDataChannelEvent('datachannel', { channel: ev.channel }));
    const onState = () => this.dispatchEvent(new CustomEvent('state', {
      detail: {
        connectionState: this.pc.connectionState,
        iceConnectionState: this.pc.iceConnectionState,
        signalingState: this.pc.signalingState,
      },
    }));
    this.pc.onconnectionstatechange = onState;
    this.pc.oniceconnectionstatechange = onState;
    this.pc.onsignalingstatechange = onState;

    this._onSignal = (ev) => {
      const f = ev.detail;
      if (f.from !== this.peerId) return;
      if (f.type === 'offer' || f.type === 'answer' || f.type === 'ice-candidate' || f.type === 'end-of-candidates') {
        this.handle(f);
      }
    };
    client.addEventListener('signal', this._onSignal);
  }

  /** Points the link at a new session id of the same peer (after its `new-session`). */
  retarget(peerId) {
    this.peerId = peerId;
  }

  /** Closes the connection and stops listening to the client. */
  close() {
    this._closed = true;
    this.client.removeEventListener('signal', this._onSignal);
    this.pc.close();
  }

  _fail(error) {
    this.dispatchEvent(new CustomEvent('error', { detail: { error } }));
  }

  async _negotiate() {
    if (this._closed) return;
    try {
      this._makingOffer = true;
      await this.pc.setLocalDescription();
      this.client.sendOffer(this.peerId, this.pc.localDescription.sdp);
    } catch (error) {
      this._fail(error);
    } finally {
      this._makingOffer = false;
    }
  }

  /**
   * Feeds one signaling frame from the peer (`offer`, `answer`, `ice-candidate`,
   * `end-of-candidates`). Frames are applied one at a time, in arrival order.
   * Called automatically for frames from `peerId`; call it yourself for a frame that
   * created the link (an offer from a peer you did not know).
   * @param {Frame} frame
   * @returns {Promise<void>}
   */
  handle(frame) {
    this._chain = this._chain.then(() => this._apply(frame)).catch((error) => this._fail(error));
    return this._chain;
  }

  async _apply(frame) {
    if (this._closed) return;
    const pc = this.pc;
    if (frame.type === 'offer' || frame.type === 'answer') {
      // Ready for an offer unless we are in the middle of making one, or hold an offer of
      // our own that has not been answered (an answer being applied does not count).
      const ready = !this._makingOffer && (pc.signalingState === 'stable' || this._settingRemoteAnswer);
      const collision = frame.type === 'offer' && !ready;
      this._ignoreOffer = !this.polite && collision;
      if (this._ignoreOffer) return;
      this._settingRemoteAnswer = frame.type === 'answer';
      try {
        // The polite side's implicit rollback happens inside setRemoteDescription.
        await pc.setRemoteDescription({ type: frame.type, sdp: frame.sdp });
      } finally {
        this._settingRemoteAnswer = false;
      }
      if (frame.type === 'offer') {
        await pc.setLocalDescription();
        this.client.sendAnswer(this.peerId, pc.localDescription.sdp);
      }
      return;
    }
    if (frame.type === 'ice-candidate') {
      try {
        await pc.addIceCandidate(frame.candidate);
      } catch (error) {
        // Candidates of an offer we ignored fail to apply; that is expected.
        if (!this._ignoreOffer) throw error;
      }
      return;
    }
    if (frame.type === 'end-of-candidates') {
      try { await pc.addIceCandidate(); } catch { /* no remote description yet, or closed */ }
    }
  }
}

/**
 * Creates and connects a client in one call.
 * @param {string} [url]
 * @param {ClientOptions} [options]
 * @returns {Promise<SwitchboardClient>}
 */
export async function connect(url, options) {
  const client = new SwitchboardClient(url, options);
  await client.connect();
  return client;
}
