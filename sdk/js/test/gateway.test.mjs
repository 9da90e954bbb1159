// End-to-end tests of the SDK against a running gateway. integration/sdk_test.go starts
// one and runs these with its addresses in the environment:
//   TIMGW_SDK_WS       ws://host:port/ (WebSocket)
//   TIMGW_SDK_HTTP     http://host:port (HTTP API)
//   TIMGW_SDK_API_KEY  an API key of the gateway
// Without TIMGW_SDK_WS every test here is skipped. Node 20 needs --experimental-websocket.
import http from "node:http";
import { test } from "node:test";
import assert from "node:assert/strict";
import { TimClient, TimError } from "../src/timgw.js";

const WS = process.env.TIMGW_SDK_WS;
const HTTP = process.env.TIMGW_SDK_HTTP;
const API_KEY = process.env.TIMGW_SDK_API_KEY;
const skip = WS ? false : "TIMGW_SDK_WS is not set: run through integration/sdk_test.go (go test -run TestSDK ./integration/)";
const opts = { skip, timeout: 60000 };
const WAIT = 15000; // bound of every wait: generous, for a race-enabled gateway on busy cores

const run = Math.random().toString(36).slice(2, 8);
let n = 0;
const uid = (prefix) => `${prefix}-${run}-${++n}`;

/** within fails when promise does not settle within WAIT. */
function within(promise, what) {
  let timer;
  const t = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), WAIT); });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/** collect records every event of the kind a client emits. */
function collect(c, event) {
  const list = [];
  c.on(event, (e) => list.push(e));
  return list;
}

/**
 * socketSpy is a WebSocket constructor for options.WebSocket that records the frames the
 * client sends and, while gate.open is false, connects to a closed port instead (every
 * attempt fails as a lost network would).
 */
function socketSpy() {
  const spy = { open: true, sent: [] };
  spy.WebSocket = function (url) {
    const ws = new WebSocket(spy.open ? url : "ws://127.0.0.1:1/");
    const send = ws.send.bind(ws);
    ws.send = (data) => { spy.sent.push(JSON.parse(data)); send(data); };
    return ws;
  };
  return spy;
}

/**
 * apiPost posts JSON to the HTTP API on a connection of its own. (fetch would leave a
 * keep-alive connection in the pool that Node's WebSocket then reuses for its upgrade;
 * the gateway took that connection for HTTP API traffic and refuses the upgrade.)
 */
function apiPost(path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(HTTP + path, { method: "POST", agent: false,
      headers: { "X-API-Key": API_KEY, "Content-Type": "application/json" } }, (res) => {
      let text = "";
      res.on("data", (b) => { text += b; });
      res.on("end", () => resolve({ status: res.statusCode, text }));
    });
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

const clients = [];
async function login(userId, extra = {}) {
  const c = new TimClient({ url: WS, userId, password: "x", ...extra });
  clients.push(c);
  const user = await within(c.connect(), `${userId} logs in`);
  assert.equal(user.userId, userId);
  return c;
}
test.after(() => { for (const c of clients) c.close(); });

/** barrier waits until everything the gateway queued to c before now has been handled. */
const barrier = (c) => within(c.onlineUsers(), "an online-users round trip");

test("login resolves with the user and emits open and login", opts, async () => {
  const id = uid("login");
  const c = new TimClient({ url: WS, userId: id, password: "x" });
  clients.push(c);
  const opened = collect(c, "open"), logins = collect(c, "login");
  const user = await within(c.connect(), "login");
  assert.equal(user.userId, id);
  assert.equal(user.status, "online");
  assert.equal(c.state, "online");
  assert.equal(opened.length, 1);
  assert.deepEqual(logins.map((l) => [l.user.userId, l.reconnect]), [[id, false]]);
  c.close();
  assert.equal(c.state, "closed");
});

test("private chat both ways resolves with the cmd 12 answer", opts, async () => {
  const [aid, bid, ghost] = [uid("alice"), uid("bob"), uid("ghost")];
  const a = await login(aid), b = await login(bid);
  const got = b.once("message", (m) => m.content === "hello bob");
  const ack = await within(a.sendPrivate(bid, "hello bob"), "the answer to alice's chat");
  assert.equal(ack.code, 10000);
  assert.ok(ack.id, "the answer names the chat");
  assert.equal(typeof ack.seq, "number");
  assert.ok(ack.delivered >= 1, `delivered ${ack.delivered}`);
  const m = await within(got, "bob receives alice's chat");
  assert.deepEqual([m.from, m.to, m.chatType, m.offline, m.id], [aid, bid, 2, false, ack.id]);

  const back = a.once("message", (x) => x.content === "hi alice");
  const ack2 = await within(b.sendPrivate(aid, "hi alice", { from: "mallory" }), "bob's answer");
  assert.equal(ack2.code, 10000);
  const m2 = await within(back, "alice receives bob's chat");
  assert.equal(m2.from, bid, "the sender is the logged-in user, not the client's from");

  // Several chats at once: each promise gets its own answer (the answer names its chat).
  const ids = [1, 2, 3].map((i) => `burst-${run}-${i}`);
  const acks = await within(Promise.all(ids.map((id, i) => a.sendPrivate(bid, "burst " + i, { id }))), "three answers");
  assert.deepEqual(acks.map((x) => x.id), ids);
  assert.deepEqual(acks.map((x) => x.seq).sort((x, y) => x - y), [ack.seq + 2, ack.seq + 3, ack.seq + 4]);

  const off = await within(a.sendPrivate(ghost, "are you there?"), "the answer for an offline user");
  assert.equal(off.code, 10001, "receiver offline resolves with 10001");
});

test("group join, chat and leave", opts, async () => {
  const [aid, bid, room] = [uid("alice"), uid("bob"), uid("room")];
  const a = await login(aid), b = await login(bid);
  await within(b.sendGroup(room, "before joining").then(() => assert.fail("a non-member's chat was accepted"),
    (e) => { assert.ok(e instanceof TimError); assert.equal(e.code, 10025); }), "the refusal");
  const g = await within(a.joinGroup(room), "alice joins");
  assert.equal(g.groupId, room);
  const joined = a.once("notice", (x) => x.type === "join" && x.userId === bid);
  await within(b.joinGroup(room), "bob joins");
  await within(joined, "alice is told that bob joined");
  assert.ok(a.groups.has(room) && b.groups.has(room));

  const got = b.once("message", (m) => m.content === "hello room");
  const ack = await within(a.sendGroup(room, "hello room"), "the answer");
  assert.equal(ack.code, 10000);
  const m = await within(got, "bob receives the group chat");
  assert.deepEqual([m.from, m.groupId, m.chatType], [aid, room, 1]);

  const left = a.once("notice", (x) => x.type === "leave" && x.userId === bid);
  await within(b.leaveGroup(room), "bob leaves");
  await within(left, "alice is told that bob left");
  assert.ok(!b.groups.has(room));
  const bobGot = collect(b, "message");
  await within(a.sendGroup(room, "after bob left"), "the answer");
  const last = b.once("message", (x) => x.content === "barrier");
  await within(a.sendPrivate(bid, "barrier"), "the answer");
  await within(last, "bob receives the private barrier");
  assert.deepEqual(bobGot.map((x) => x.content), ["barrier"], "bob received the group chat after leaving");
  await assert.rejects(b.leaveGroup(room), (e) => e.code === 10025, "leaving again is 10025");
});

test("typing reaches the peer and the group", opts, async () => {
  const [aid, bid, room] = [uid("alice"), uid("bob"), uid("room")];
  const a = await login(aid), b = await login(bid);
  const t1 = b.once("typing");
  assert.equal(a.typing({ to: bid }), true);
  assert.deepEqual(await within(t1, "bob gets typing"), { from: aid, to: bid, state: "typing" });
  await within(a.joinGroup(room), "join");
  await within(b.joinGroup(room), "join");
  const t2 = b.once("typing", (x) => x.groupId === room);
  a.typing({ groupId: room }, "paused");
  const e = await within(t2, "bob gets the group's typing");
  assert.deepEqual([e.from, e.state], [aid, "paused"]);
  const err = a.once("error");
  a.typing({});
  assert.equal((await within(err, "the refusal of a typing signal without receiver")).code, 10024);
});

test("history, recall and online users", opts, async () => {
  const [aid, bid] = [uid("alice"), uid("bob")];
  const a = await login(aid), b = await login(bid);
  const acks = [];
  for (const t of ["one", "two", "three"]) acks.push(await within(a.sendPrivate(bid, t), "an answer"));
  const h = await within(b.history({ peer: aid, count: 10 }), "history");
  assert.deepEqual(h.messages.map((m) => m.content), ["one", "two", "three"]);
  assert.equal(h.more, false);
  const after = await within(b.history({ peer: aid, afterSeq: acks[0].seq }), "history after the first");
  assert.deepEqual(after.messages.map((m) => m.content), ["two", "three"]);
  const before = await within(b.history({ peer: aid, beforeSeq: acks[2].seq, count: 1, reverse: true }), "history before the last");
  assert.deepEqual([before.messages.map((m) => m.content), before.more], [["two"], true]);

  const notice = b.once("notice", (x) => x.type === "recall");
  const r = await within(a.recall(acks[1].id, { to: bid }), "the recall");
  assert.deepEqual([r.id, r.recalled], [acks[1].id, true]);
  const nb = await within(notice, "bob is told of the recall");
  assert.equal(nb.message.id, acks[1].id);
  await assert.rejects(a.recall("no-such-chat", { to: bid }), (e) => e.code === 10031);

  const online = (await within(a.onlineUsers(), "online users")).map((u) => u.userId);
  assert.ok(online.includes(aid) && online.includes(bid), `online: ${online}`);
});

test("offline messages after a reconnect arrive once, marked offline, and are confirmed", opts, async () => {
  const [aid, bid] = [uid("alice"), uid("bob")];
  const spy = socketSpy();
  const a = await login(aid);
  const b = await login(bid, { WebSocket: spy.WebSocket, reconnectMinDelay: 100, reconnectMaxDelay: 400, reconnectJitter: 0 });
  const live = b.once("message", (m) => m.content === "live");
  await within(a.sendPrivate(bid, "live"), "the answer");
  await within(live, "bob gets the live chat");

  // The network goes: bob's socket dies and reconnect attempts fail.
  const messages = collect(b, "message"), reconnecting = collect(b, "reconnecting");
  spy.open = false;
  const closed = b.once("close");
  b.socket.close();
  assert.equal((await within(closed, "bob's close event")).willReconnect, true);
  for (const t of ["while away 1", "while away 2"]) {
    const ack = await within(a.sendPrivate(bid, t), "the answer");
    assert.ok(ack.code === 10000 || ack.code === 10001, `code ${ack.code}`);
  }
  await within(new Promise((resolve) => { const off = b.on("reconnecting", (r) => { if (r.attempt >= 3) { off(); resolve(); } }); }), "three reconnect attempts");
  assert.deepEqual(reconnecting.slice(0, 3).map((r) => [r.attempt, r.delay]), [[1, 100], [2, 200], [3, 400]],
    "the waits double from reconnectMinDelay up to reconnectMaxDelay");

  // The network is back: bob logs in again and fetches what was kept.
  spy.open = true;
  const relogin = await within(b.once("login"), "bob logs in again");
  assert.equal(relogin.reconnect, true);
  assert.equal(await within(b.fetchOffline(), "the offline fetch at login"), 2, "the fetch at login emits the two kept chats");
  assert.equal(await within(b.fetchOffline(), "a second offline fetch"), 0, "a second fetch finds nothing new");
  const offline = messages.filter((m) => m.offline).map((m) => m.content);
  assert.deepEqual(offline, ["while away 1", "while away 2"], "each kept chat arrives once, marked offline");
  assert.equal(messages.filter((m) => m.content === "live").length, 0, "the chat seen live is not repeated");
  const asks = spy.sent.filter((f) => f.cmd === 19 && f.type === 0);
  assert.ok(asks.some((f) => f.ack !== undefined), "the pages were confirmed with ack");

  // Confirmed: another device of bob's finds an empty inbox.
  const other = await login(bid, { fetchOffline: false });
  const more = collect(other, "message");
  assert.equal(await within(other.fetchOffline(), "the other device's fetch"), 0);
  assert.deepEqual(more, []);
});

test("a kicked client reconnects with backoff, logs in again and rejoins its groups", opts, async () => {
  const [cid, did, room] = [uid("carol"), uid("dave"), uid("room")];
  const spy = socketSpy();
  const c = await login(cid, { WebSocket: spy.WebSocket, reconnectMinDelay: 200, reconnectJitter: 0 });
  const d = await login(did);
  await within(c.joinGroup(room), "carol joins");
  await within(d.joinGroup(room), "dave joins");
  const closes = collect(c, "close"), reconnecting = collect(c, "reconnecting");
  const relogin = c.once("login");
  const res = await within(apiPost(`/api/v1/users/${encodeURIComponent(cid)}/kick`, { reason: "sdk test kick" }), "the kick");
  assert.equal(res.status, 200, res.text);
  assert.equal((await within(relogin, "carol logs in again")).reconnect, true);
  assert.equal(closes[0].willReconnect, true);
  assert.match(closes[0].reason, /sdk test kick/);
  assert.deepEqual(reconnecting.map((r) => [r.attempt, r.delay]), [[1, 200]]);
  await barrier(c); // the rejoin was sent before this request and is answered before it
  const joins = spy.sent.filter((f) => f.cmd === 7 && f.groupId === room);
  assert.equal(joins.length, 2, "carol joined at first and again after the reconnect");
  const got = c.once("message", (m) => m.content === "welcome back");
  await within(d.sendGroup(room, "welcome back"), "the answer");
  assert.equal((await within(got, "carol gets the group chat after the reconnect")).groupId, room);
});

test("outbox: chats cut off by a kick or sent while reconnecting are answered once and delivered once, in order", opts, async () => {
  const [aid, bid] = [uid("alice"), uid("bob")];
  const spy = socketSpy();
  const a = await login(aid, { WebSocket: spy.WebSocket, reconnectMinDelay: 500, reconnectMaxDelay: 500, reconnectJitter: 0 });
  const b = await login(bid);
  const got = collect(b, "message");
  const ids = Array.from({ length: 8 }, (_, i) => `${aid}-outbox-${i}`);
  const sends = [];
  const closed = a.once("close");
  for (const id of ids.slice(0, 4)) sends.push(a.sendPrivate(bid, id, { id }));
  // The kick closes alice's connection while those wait for (or just got) their answers.
  const res = await within(apiPost(`/api/v1/users/${encodeURIComponent(aid)}/kick`, { reason: "outbox test" }), "the kick");
  assert.equal(res.status, 200, res.text);
  assert.equal((await within(closed, "alice's close event")).willReconnect, true);
  assert.equal(a.state, "reconnecting");
  // Sent while reconnecting: they wait in the outbox and go after the older ones.
  for (const id of ids.slice(4)) sends.push(a.sendPrivate(bid, id, { id }));
  assert.deepEqual(a.outbox.slice(-4), ids.slice(4));
  const acks = await within(Promise.all(sends), "every answer");
  let last = 0;
  acks.forEach((ack, i) => {
    assert.equal(ack.id, ids[i]);
    assert.equal(ack.code, 10000, `chat ${i}: ${JSON.stringify(ack)}`);
    assert.ok(ack.seq > last, `chat ${i}: seq ${ack.seq} after ${last}: stored in send order`);
    last = ack.seq;
  });
  assert.deepEqual(a.outbox, []);
  const written = spy.sent.filter((f) => f.cmd === 11).map((f) => f.id);
  for (const id of ids.slice(4)) assert.equal(written.filter((w) => w === id).length, 1, `${id} written once`);
  await within(new Promise((resolve) => { const t = setInterval(() => { if (got.length >= ids.length) { clearInterval(t); resolve(); } }, 20); }), "bob gets the 8 chats");
  await barrier(b);
  assert.deepEqual(got.map((m) => m.id), ids, "bob gets each chat once, in order");
});

test("reconnectNow skips the backoff wait; close stops reconnecting", opts, async () => {
  const id = uid("eager");
  const c = await login(id, { reconnectMinDelay: 60000, reconnectMaxDelay: 60000, reconnectJitter: 0 });
  const waiting = c.once("reconnecting");
  c.socket.close();
  assert.deepEqual(await within(waiting, "the reconnecting event"), { attempt: 1, delay: 60000 });
  assert.equal(c.state, "reconnecting");
  const back = c.once("login");
  c.reconnectNow();
  assert.equal((await within(back, "the login after reconnectNow")).reconnect, true);
  assert.equal(c.state, "online");

  const closes = collect(c, "close"), again = collect(c, "reconnecting");
  c.close();
  assert.deepEqual(closes.map((e) => e.willReconnect), [false]);
  assert.equal(c.state, "closed");
  assert.deepEqual(again, []);
  await assert.rejects(c.sendPrivate(id, "after close"), /client closed/);
});

test("receipts and the conversation list (cmd 25-29)", opts, async (t) => {
  const [aid, bid] = [uid("alice"), uid("bob")];
  const a = await login(aid), b = await login(bid);
  const acks = [];
  for (const text of ["first", "second"]) acks.push(await within(a.sendPrivate(bid, text), "an answer"));
  const told = a.once("receipt");
  let r;
  try {
    r = await within(b.receipt({ to: aid }, { read: acks[1].seq }), "the receipt's answer");
  } catch (e) {
    if (e.code === 10014) { t.skip("needs a gateway with receipts (cmd 25-29): this one answers 10014"); return; }
    throw e;
  }
  assert.deepEqual(r, { to: aid, delivered: acks[1].seq, read: acks[1].seq }, "read implies delivered");
  assert.deepEqual(await within(told, "alice's receipt event"), { from: bid, to: aid, delivered: acks[1].seq, read: acks[1].seq });
  await assert.rejects(b.receipt({ to: aid }), (e) => e.code === 10020, "a receipt without seqs is 10020");

  const { conversations } = await within(b.conversations({ limit: 10 }), "bob's conversations");
  const conv = conversations.find((c) => c.peer === aid);
  assert.ok(conv, `no conversation with ${aid} in ${JSON.stringify(conversations)}`);
  assert.deepEqual([conv.type, conv.lastSeq, conv.unread, conv.read, conv.last.content], ["private", acks[1].seq, 0, acks[1].seq, "second"]);
  const mine = (await within(a.conversations(), "alice's conversations")).conversations.find((c) => c.peer === bid);
  assert.equal(mine.peerRead, acks[1].seq, "alice sees what bob read");
});
