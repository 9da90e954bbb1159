// timgw JavaScript client: one ES module, no dependencies, for browsers and Node >= 20.
// It speaks the WebSocket form of the t-im protocol as timgw serves it (docs/protocol.md):
// one JSON object per text frame, the command in "cmd", numbers possibly sent as strings.
//
// Every request the SDK sends gets exactly one answer from the gateway, in a packet of the
// request's response command (a refusal included), and a connection's answers come in the
// order of its requests. The client therefore keeps one FIFO of pending requests per
// response command and settles the oldest when an answer arrives (a chat's or a recall's
// answer is matched by the chat id it names, when it names one).

/** Command numbers (docs/protocol.md, section 2). */
export const CMD = Object.freeze({
  ERROR: 0, LOGIN_REQ: 5, LOGIN_RESP: 6, JOIN_REQ: 7, JOIN_RESP: 8, JOIN_NOTIFY: 9, EXIT_NOTIFY: 10,
  CHAT: 11, CHAT_RESP: 12, HEARTBEAT: 13, CLOSE: 14, RECALL_REQ: 15, RECALL_RESP: 16,
  GET_USER_REQ: 17, GET_USER_RESP: 18, GET_MSG_REQ: 19, GET_MSG_RESP: 20,
  LEAVE_REQ: 21, LEAVE_RESP: 22, TYPING_REQ: 23, TYPING_NOTIFY: 24,
  RECEIPT_REQ: 25, RECEIPT_RESP: 26, RECEIPT_NOTIFY: 27, CONVERSATIONS_REQ: 28, CONVERSATIONS_RESP: 29,
});

/** Status codes that mean success (docs/protocol.md, section 3). */
const OK = new Set([10000, 10001, 10003, 10005, 10006, 10007, 10009, 10011, 10016, 10018, 10019, 10021]);

/** Chat refusals the outbox retries after a reconnect: storage unavailable, server busy or shutting down. */
const RETRY = new Set([10030, 10034]);

/** Chat types. */
export const CHAT_GROUP = 1;
export const CHAT_PRIVATE = 2;

/** TimError is a refusal by the gateway (code is its status code) or a local failure (code 0). */
export class TimError extends Error {
  constructor(message, code = 0, response = undefined) {
    super(code ? `${message} (${code})` : message);
    this.name = "TimError";
    this.code = code;
    this.response = response;
  }
}

/**
 * backoffDelay returns the wait before reconnect attempt n (1, 2, ...): min·2^(n-1) capped
 * at max, of which a random part (jitter, 0..1) is taken away so that many clients do
 * not come back at the same instant.
 */
export function backoffDelay(attempt, { min = 500, max = 30000, jitter = 0.5 } = {}, random = Math.random) {
  const full = Math.min(max, min * 2 ** Math.max(0, attempt - 1));
  return Math.round(full * (1 - jitter * random()));
}

const num = (v) => (v === undefined || v === null || v === "" ? undefined : Number(v));
const str = (v) => (v === undefined || v === null ? undefined : typeof v === "object" ? String(v.userId ?? v.groupId ?? v.id ?? "") : String(v));

/** defined deletes the members of o that are undefined and returns o. */
function defined(o) {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}

/** normalizeChat turns a wire chat (numbers possibly strings) into a Message. */
export function normalizeChat(m, offline = false) {
  const out = {
    id: str(m.id), from: str(m.from), to: str(m.to), groupId: str(m.groupId),
    chatType: num(m.chatType) ?? (m.groupId ? CHAT_GROUP : CHAT_PRIVATE), msgType: num(m.msgType) ?? 0,
    content: m.content == null ? "" : String(m.content), createTime: num(m.createTime), seq: num(m.seq),
    offline,
  };
  if (m.extras !== undefined) out.extras = m.extras;
  if (m.recalled === true || m.recalled === "true") out.recalled = true;
  return defined(out);
}

/** chatsOf lists the chats of a cmd 20 answer's data: {friends: {peer: [...]}, groups: {gid: [...]}}. */
export function chatsOf(data) {
  const out = [];
  for (const key of ["friends", "groups"]) {
    const byConv = data && data[key];
    if (!byConv || typeof byConv !== "object") continue;
    for (const [id, list] of Object.entries(byConv)) {
      if (!Array.isArray(list)) continue;
      for (const m of list) {
        if (!m || typeof m !== "object") continue;
        if (key === "groups" && m.groupId == null) m.groupId = id;
        out.push(m);
      }
    }
  }
  return out.sort((a, b) => (num(a.seq) ?? 0) - (num(b.seq) ?? 0) || (num(a.createTime) ?? 0) - (num(b.createTime) ?? 0));
}

const MAX_SEEN = 5000; // message ids remembered for deduplication

/**
 * TimClient is one user's connection to a timgw gateway: it logs in, keeps the connection
 * up (heartbeats, reconnection with backoff), fetches what was kept while it was away, and
 * turns the gateway's pushes into events.
 */
export class TimClient {
  /** @param {import("./timgw.js").ClientOptions} options */
  constructor(options) {
    if (!options || !options.url) throw new TimError("options.url is required (ws://host:8888/ or wss://...)");
    if (!options.userId && !options.token) throw new TimError("options.userId or options.token is required");
    this.options = {
      reconnect: true, reconnectMinDelay: 500, reconnectMaxDelay: 30000, reconnectJitter: 0.5,
      heartbeatInterval: 30000, requestTimeout: 15000, fetchOffline: true, offlinePageSize: 100,
      outbox: true, maxOutbox: 1000, ...options,
    };
    this.WS = this.options.WebSocket || globalThis.WebSocket;
    if (!this.WS) throw new TimError("no WebSocket: pass options.WebSocket, or run Node 20 with --experimental-websocket (Node 22+ has it)");
    this.user = null; // the logged-in user (cmd 6)
    this.state = "idle"; // idle, connecting, online, reconnecting, closed
    this.groups = new Set(); // groups joined through this client, joined again after a reconnect
    this.socket = null; // the current WebSocket, for diagnostics
    this._listeners = new Map();
    this._pending = new Map(); // response cmd -> [{resolve, reject, timer, key}]
    this._seen = new Set();
    this._attempt = 0;
    this._timers = { reconnect: 0, heartbeat: 0 };
    this._lastFrame = 0;
    this._offline = null; // the offline fetch running, a promise
    this._seq = 0;
    this._outbox = []; // chats waiting for their final answers, in send order: {id, body, resolve, reject, timer, ws, sent, retry, done}
  }

  /** outbox lists the ids of the chats waiting for their answers, in send order. */
  get outbox() { return this._outbox.map((it) => it.id); }

  // ---- events ----

  /** on subscribes to an event and returns a function that unsubscribes. */
  on(event, fn) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) { this._listeners.get(event)?.delete(fn); }

  /** once resolves with the next event of the kind (for which filter, when given, is true). */
  once(event, filter = () => true) {
    return new Promise((resolve) => {
      const off = this.on(event, (e) => { if (filter(e)) { off(); resolve(e); } });
    });
  }

  _emit(event, payload) {
    for (const fn of [...(this._listeners.get(event) || [])]) {
      try { fn(payload); } catch (e) { if (event !== "error") this._emit("error", new TimError(`"${event}" listener threw: ${e && e.message}`)); }
    }
  }

  // ---- connection ----

  /** connect opens the connection and logs in; it resolves with the user. */
  connect() {
    if (this.state === "online") return Promise.resolve(this.user);
    if (this._connecting) return this._connecting;
    clearTimeout(this._timers.reconnect);
    this._closedByUser = false;
    this._attempt = 0;
    this._connecting = this._open(false).finally(() => { this._connecting = null; });
    return this._connecting;
  }

  /** close ends the session for good (no reconnection); pending requests are rejected. */
  close() {
    this._closedByUser = true;
    clearTimeout(this._timers.reconnect);
    const ws = this.socket;
    this._dropSocket(new TimError("client closed"));
    this._failOutbox((id) => new TimError(`client closed: chat ${id} was not acknowledged`));
    if (ws && ws.readyState <= 1) {
      try { ws.send(JSON.stringify({ cmd: CMD.CLOSE, userId: this.user ? this.user.userId : "" })); } catch { /* closing anyway */ }
      ws.close(1000, "client closed");
    }
    this._setState("closed");
    this._emit("close", { code: 1000, reason: "client closed", willReconnect: false });
  }

  /** reconnectNow skips the backoff wait of a pending reconnection. */
  reconnectNow() {
    if (this.state !== "reconnecting") return;
    clearTimeout(this._timers.reconnect);
    this._reconnect();
  }

  _setState(s) {
    this.state = s;
    // A session that ends (a refused login, reconnection off) fails what waits to be sent.
    if (s === "closed") this._failOutbox((id) => new TimError(`session ended: chat ${id} was not sent`));
  }

  _open(isReconnect) {
    this._setState(isReconnect ? "reconnecting" : "connecting");
    return new Promise((resolve, reject) => {
      if (this.socket) { const old = this.socket; this._dropSocket(new TimError("connection replaced")); old.close(1000, "replaced"); }
      let ws;
      try { ws = new this.WS(this.options.url); } catch (e) {
        reject(new TimError(`cannot open ${this.options.url}: ${e && e.message}`));
        if (isReconnect && !this._closedByUser) this._scheduleReconnect(); else this._setState("closed");
        return;
      }
      ws.binaryType = "arraybuffer";
      this.socket = ws;
      let loggedIn = false, opened = false;
      ws.onopen = () => {
        opened = true;
        if (this.socket !== ws) return;
        this._emit("open", { url: this.options.url, reconnect: isReconnect });
        const o = this.options;
        const body = defined({ userId: o.userId || undefined, password: o.password || undefined, token: o.token || undefined });
        this._request(CMD.LOGIN_REQ, body).then((r) => {
          loggedIn = true;
          this._onLogin(r, isReconnect);
          resolve(this.user);
        }, (err) => {
          reject(err);
          if (this.socket !== ws) return; // closed meanwhile: onclose did the rest
          if (!err.code) { ws.close(1000, "no login answer"); return; } // onclose follows
          // A refused login ends the session: the same credentials would be refused again.
          this._closedByUser = true;
          this._dropSocket(err);
          ws.close(1000, "login refused");
          this._setState("closed");
          this._emit("close", { code: 1000, reason: err.message, willReconnect: false });
        });
      };
      const closed = (code, reason) => {
        if (this.socket !== ws) return;
        if (!loggedIn) reject(new TimError(`connection closed before login (${code}${reason ? ": " + reason : ""})`));
        this._onClose(code, reason, loggedIn);
      };
      ws.onmessage = (ev) => { if (this.socket === ws) this._onFrame(ev.data); };
      // A connection that fails before it opens may report only the error (Node 20's
      // WebSocket does); otherwise onclose follows with the details.
      ws.onerror = () => { if (!opened) closed(1006, "connection failed"); };
      ws.onclose = (ev) => closed(ev.code, ev.reason);
    });
  }

  _onLogin(r, isReconnect) {
    const u = r.user || (r.data && typeof r.data === "object" ? r.data : {});
    this.user = { ...u, userId: str(u.userId) || this.options.userId };
    this._attempt = 0;
    this._setState("online");
    this._lastFrame = Date.now();
    // The outbox goes first, in its order, before any chat sent from here on.
    for (const it of this._outbox) if (!it.ws) this._writeItem(it);
    clearInterval(this._timers.heartbeat);
    if (this.options.heartbeatInterval > 0) this._timers.heartbeat = setInterval(() => this._heartbeat(), this.options.heartbeatInterval);
    this._emit("login", { user: this.user, reconnect: isReconnect });
    if (isReconnect) {
      for (const g of this.groups) {
        this._request(CMD.JOIN_REQ, { groupId: g }).catch((e) => this._emit("error", new TimError(`rejoin ${g}: ${e.response ? e.response.msg : e.message}`, e.code, e.response)));
      }
    }
    // A fetch cut short by a lost connection runs again after the next login.
    if (this.options.fetchOffline) this.fetchOffline().catch((e) => { if (e.code || this.state === "online") this._emit("error", e); });
  }

  _heartbeat() {
    // A connection that has been silent for 2.5 intervals (a heartbeat answer is due every
    // interval) is dead without a close: drop it and reconnect.
    if (Date.now() - this._lastFrame > 2.5 * this.options.heartbeatInterval) {
      const ws = this.socket;
      this._onClose(4000, "heartbeat timeout", true);
      try { ws && ws.close(4000, "heartbeat timeout"); } catch { /* already closed */ }
      return;
    }
    this._send({ cmd: CMD.HEARTBEAT, hbbyte: 1 });
  }

  _dropSocket(err) {
    clearInterval(this._timers.heartbeat);
    const ws = this.socket;
    this.socket = null;
    if (ws) ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    for (const queue of this._pending.values()) for (const p of queue) { clearTimeout(p.timer); if (!p.done && !p.item) p.reject(err); }
    this._pending.clear();
    for (const it of this._outbox) it.ws = null; // written again after the next login
  }

  _onClose(code, reason, wasOnline) {
    this._dropSocket(new TimError(`connection closed (${code}${reason ? ": " + reason : ""})`));
    const willReconnect = !this._closedByUser && this.options.reconnect && (wasOnline || this._attempt > 0);
    this._emit("close", { code, reason, willReconnect });
    if (willReconnect) this._scheduleReconnect(); else if (!this._closedByUser) this._setState("closed");
  }

  _scheduleReconnect() {
    this._attempt++;
    const o = this.options;
    const delay = backoffDelay(this._attempt, { min: o.reconnectMinDelay, max: o.reconnectMaxDelay, jitter: o.reconnectJitter });
    this._setState("reconnecting");
    this._emit("reconnecting", { attempt: this._attempt, delay });
    this._timers.reconnect = setTimeout(() => this._reconnect(), delay);
  }

  _reconnect() {
    // A failed attempt schedules the next one itself (onclose); a refused login ends the session.
    this._open(true).catch((err) => { if (!this._closedByUser || err.code) this._emit("error", err); });
  }

  // ---- frames ----

  _send(obj) {
    const ws = this.socket;
    if (!ws || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  /** _request sends cmd with body and resolves with the answer (rejects on a refusal). */
  _request(cmd, body, key) {
    const respCmd = cmd === CMD.CHAT ? CMD.CHAT_RESP : cmd + 1;
    return new Promise((resolve, reject) => {
      if (!this._send({ cmd, ...body })) { reject(new TimError("not connected")); return; }
      const p = { resolve, reject, key, done: false };
      // A timed-out request stays queued (done): its late answer is still consumed.
      p.timer = setTimeout(() => { p.done = true; reject(new TimError(`no answer to cmd ${cmd} within ${this.options.requestTimeout} ms`)); },
        this.options.requestTimeout);
      if (!this._pending.has(respCmd)) this._pending.set(respCmd, []);
      this._pending.get(respCmd).push(p);
    });
  }

  /**
   * _settle hands an answer to the pending request of its cmd named key (a chat id), or
   * else to the oldest; false when none waits.
   */
  _settle(cmd, r, key) {
    const queue = this._pending.get(cmd);
    if (!queue || !queue.length) return false;
    const i = key === undefined ? -1 : queue.findIndex((q) => q.key === key);
    const p = queue.splice(Math.max(i, 0), 1)[0];
    if (p.item) { this._answerItem(p.item, r); return true; }
    clearTimeout(p.timer);
    if (p.done) return true;
    p.done = true;
    const code = num(r.code);
    if (OK.has(code)) p.resolve(r); else p.reject(new TimError(r.msg || "refused", code, r));
    return true;
  }

  _onFrame(text) {
    this._lastFrame = Date.now();
    let r;
    try { r = JSON.parse(typeof text === "string" ? text : new TextDecoder().decode(text)); } catch {
      this._emit("error", new TimError("unreadable frame from the gateway: " + String(text).slice(0, 200)));
      return;
    }
    const cmd = num(r.cmd), code = num(r.code);
    switch (cmd) {
      case CMD.CHAT: this._onChat(r, false); return;
      case CMD.HEARTBEAT: return;
      case CMD.JOIN_NOTIFY: case CMD.EXIT_NOTIFY:
        this._emit("notice", { type: cmd === CMD.JOIN_NOTIFY ? "join" : "leave", user: r.user, group: r.group,
          userId: str(r.user), groupId: str(r.group) });
        return;
      case CMD.TYPING_NOTIFY:
        this._emit("typing", defined({ from: str(r.from), to: str(r.to), groupId: str(r.groupId), state: r.state || "typing" }));
        return;
      case CMD.RECEIPT_NOTIFY:
        this._emit("receipt", defined({ from: str(r.from), to: str(r.to), groupId: str(r.groupId), delivered: num(r.delivered), read: num(r.read) }));
        return;
      case CMD.RECALL_RESP: {
        const d = r.data && typeof r.data === "object" ? r.data : {};
        const queue = this._pending.get(cmd) || [];
        // Our own recall's answer names the chat we asked about (or is a refusal);
        // anything else is a notice that a chat of one of our conversations was recalled.
        if (queue.some((p) => p.key === str(d.id)) || (code !== 10000 && queue.length)) { this._settle(cmd, r, str(d.id)); return; }
        this._emit("notice", { type: "recall", message: normalizeChat(d), offline: false });
        return;
      }
      case CMD.ERROR:
        this._emit("error", new TimError(r.msg || "error from the gateway", code, r));
        return;
      default:
        // A chat's answer names the chat (data.id) when it was accepted; refusals go in order.
        if (this._settle(cmd, r, cmd === CMD.CHAT_RESP && r.data ? str(r.data.id) : undefined)) return;
        // A gateway that does not know a request answers 10014 in a packet of its cmd.
        if (code === 10014 && cmd % 2 === 1 && this._settle(cmd + 1, r)) return;
        if (code && !OK.has(code)) this._emit("error", new TimError(r.msg || `cmd ${cmd} refused`, code, r));
    }
  }

  /** _onChat emits a chat once per id; false when it was seen before. */
  _onChat(m, offline) {
    const msg = normalizeChat(m, offline);
    if (!this._remember(msg.id)) return false;
    this._emit("message", msg);
    return true;
  }

  _remember(id) {
    if (!id) return true;
    if (this._seen.has(id)) return false;
    this._seen.add(id);
    if (this._seen.size > MAX_SEEN) this._seen.delete(this._seen.values().next().value);
    return true;
  }

  // ---- outbox ----

  /** _queue puts a chat in the outbox, writes it when online, and resolves with its final answer. */
  _queue(body) {
    return new Promise((resolve, reject) => {
      if (this.state === "closed") { reject(new TimError("client closed")); return; }
      if (this._outbox.length >= this.options.maxOutbox) {
        reject(new TimError(`outbox full: ${this._outbox.length} chats wait for their answers (maxOutbox)`));
        return;
      }
      const it = { id: body.id, body, resolve, reject, ws: null, sent: false, retry: null, done: false };
      // After requestTimeout the chat leaves the outbox; if written, its late answer is consumed.
      it.timer = setTimeout(() => {
        if (it.done) return;
        this._removeItem(it);
        const err = new TimError(`chat ${it.id} not acknowledged within ${this.options.requestTimeout} ms` +
          (it.sent ? " (written: the gateway may have accepted it; send it again with this id to know)" : "") +
          (it.retry ? `; last answer: ${it.retry.message}` : ""), 0, it.retry ? it.retry.response : undefined);
        err.id = it.id;
        err.written = it.sent;
        reject(err);
      }, this.options.requestTimeout);
      this._outbox.push(it);
      if (this.state === "online") this._writeItem(it);
    });
  }

  /** _writeItem writes a chat of the outbox on the current socket and queues its answer. */
  _writeItem(it) {
    if (!this._send({ cmd: CMD.CHAT, ...it.body })) return; // written after the next login
    it.ws = this.socket;
    it.sent = true;
    if (!this._pending.has(CMD.CHAT_RESP)) this._pending.set(CMD.CHAT_RESP, []);
    this._pending.get(CMD.CHAT_RESP).push({ key: it.id, item: it });
  }

  /** _answerItem takes a cmd 12 answer: final, or (10030, 10034) to resend after the next login. */
  _answerItem(it, r) {
    if (it.done) return; // timed out: the late answer is consumed
    const code = num(r.code);
    if (RETRY.has(code)) { it.ws = null; it.retry = new TimError(r.msg || "refused", code, r); return; }
    this._removeItem(it);
    if (OK.has(code)) it.resolve(r); else it.reject(new TimError(r.msg || "refused", code, r));
  }

  _removeItem(it) {
    it.done = true;
    clearTimeout(it.timer);
    const i = this._outbox.indexOf(it);
    if (i >= 0) this._outbox.splice(i, 1);
  }

  _failOutbox(errOf) {
    const items = this._outbox;
    this._outbox = [];
    for (const it of items) { it.done = true; clearTimeout(it.timer); it.reject(errOf(it.id)); }
  }

  // ---- commands ----

  /**
   * send sends a chat and resolves with the cmd 12 answer's data plus its code (10000 sent,
   * 10001 receiver offline and kept); a refusal rejects with a TimError. A chat without id
   * gets one, so that a resend after a lost answer is recognised by the gateway. With the
   * outbox (options.outbox, the default) a chat sent while reconnecting, or whose answer a
   * lost connection cut off, is written again after the next login (before newer chats),
   * and the promise settles with its first answer, or after requestTimeout.
   */
  async send(chat) {
    const body = { ...chat };
    if (!body.id) body.id = `js-${Date.now().toString(36)}-${(++this._seq).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    if (!body.chatType) body.chatType = body.groupId ? CHAT_GROUP : CHAT_PRIVATE;
    if (body.msgType == null) body.msgType = 0;
    this._remember(body.id); // our other devices' copies and our inbox need not show it again
    const r = await (this.options.outbox ? this._queue(body) : this._request(CMD.CHAT, body, body.id));
    const d = r.data && typeof r.data === "object" ? r.data : {};
    return defined({ ...d, id: str(d.id) || body.id, seq: num(d.seq), createTime: num(d.createTime), serverTime: num(d.serverTime),
      code: num(r.code), msg: r.msg });
  }

  /** sendPrivate sends content to user to. */
  sendPrivate(to, content, extra = {}) { return this.send({ ...extra, to, chatType: CHAT_PRIVATE, content }); }

  /** sendGroup sends content to group groupId. */
  sendGroup(groupId, content, extra = {}) { return this.send({ ...extra, groupId, chatType: CHAT_GROUP, content }); }

  /** joinGroup joins a group (cmd 7) and resolves with it; it is joined again after a reconnect. */
  async joinGroup(groupId, name) {
    const body = { groupId };
    if (name) body.name = name;
    const r = await this._request(CMD.JOIN_REQ, body);
    this.groups.add(groupId);
    return r.group || (r.data && r.data.group) || { groupId };
  }

  /** leaveGroup leaves a group (cmd 21). */
  async leaveGroup(groupId) {
    this.groups.delete(groupId);
    const r = await this._request(CMD.LEAVE_REQ, { groupId });
    return r.group || { groupId };
  }

  /** typing tells a peer ({to}) or a group ({groupId}) that this user is typing (cmd 23). */
  typing(target, state = "typing") {
    return this._send({ cmd: CMD.TYPING_REQ, ...target, state });
  }

  /** onlineUsers lists the users online (cmd 17 type 0). */
  async onlineUsers() {
    const r = await this._request(CMD.GET_USER_REQ, { userId: this.user ? this.user.userId : "", type: 0 });
    return Array.isArray(r.data) ? r.data : [];
  }

  /**
   * history reads a stored conversation (cmd 19 type 1): with a {peer} or a {groupId}, and
   * count, offset, afterSeq, beforeSeq, beginTime, endTime, reverse. Messages are in seq
   * order; recall events have cmd 16.
   */
  async history(q) {
    const body = { userId: this.user ? this.user.userId : "", type: 1 };
    for (const k of ["groupId", "count", "offset", "afterSeq", "beforeSeq", "beginTime", "endTime", "reverse"]) {
      if (q[k] !== undefined) body[k] = q[k];
    }
    if (q.peer !== undefined) body.fromUserId = q.peer;
    const r = await this._request(CMD.GET_MSG_REQ, body);
    const d = r.data || {};
    return { messages: chatsOf(d).map((m) => ({ ...normalizeChat(m), cmd: num(m.cmd) ?? CMD.CHAT })), more: !!d.more };
  }

  /** recall recalls one's own chat id in its conversation ({to} or {groupId}) (cmd 15). */
  async recall(id, conv) {
    const r = await this._request(CMD.RECALL_REQ, { id, ...conv }, id);
    return normalizeChat(r.data || { id });
  }

  /**
   * receipt raises this user's delivered and/or read cursors (seqs) of a conversation,
   * {to} a peer or {groupId} (cmd 25), and resolves with the cursors as stored. The other
   * side gets a "receipt" event. Needs a gateway with receipts (cmd 25-29) and storage.
   */
  async receipt(conv, { delivered, read } = {}) {
    const r = await this._request(CMD.RECEIPT_REQ, defined({ ...conv, delivered, read }));
    const d = r.data || {};
    return defined({ to: str(d.to), groupId: str(d.groupId), delivered: num(d.delivered), read: num(d.read) });
  }

  /**
   * conversations lists this user's conversations, newest last chat first (cmd 28):
   * {limit, before}; resolves with {conversations, next} (next: the before of the next
   * page, when more follow).
   */
  async conversations({ limit, before } = {}) {
    const r = await this._request(CMD.CONVERSATIONS_REQ, defined({ limit, before }));
    const d = r.data || {};
    const list = (Array.isArray(d.conversations) ? d.conversations : []).map((c) => {
      const out = { ...c };
      for (const k of ["lastSeq", "unread", "delivered", "read", "peerDelivered", "peerRead"]) if (c[k] !== undefined) out[k] = num(c[k]);
      if (c.last && typeof c.last === "object") out.last = normalizeChat(c.last);
      return out;
    });
    return defined({ conversations: list, next: num(d.next) });
  }

  /**
   * fetchOffline reads the messages kept while this user was away (cmd 19 type 0), page
   * by page, confirming each page with its cursor, and emits those not seen yet as
   * "message" events with offline: true. It resolves with how many it emitted. It runs
   * after every login when options.fetchOffline is on; calls while one runs share it.
   */
  fetchOffline() {
    if (!this._offline) this._offline = this._drainOffline().finally(() => { this._offline = null; });
    return this._offline;
  }

  async _drainOffline() {
    let ack, emitted = 0;
    for (;;) {
      const body = { userId: this.user ? this.user.userId : "", type: 0, count: this.options.offlinePageSize };
      if (ack !== undefined) body.ack = ack;
      const r = await this._request(CMD.GET_MSG_REQ, body);
      const d = r.data || {};
      const chats = chatsOf(d);
      for (const m of chats) {
        if (num(m.cmd) === CMD.RECALL_RESP) this._emit("notice", { type: "recall", message: normalizeChat(m, true), offline: true });
        else if (this._onChat(m, true)) emitted++;
      }
      if (d.cursor == null || (!chats.length && !d.more)) return emitted;
      ack = d.cursor;
    }
  }
}
