// Unit tests of the SDK's pure parts; no gateway needed. Run: node --test test/
import { test } from "node:test";
import assert from "node:assert/strict";
import { backoffDelay, chatsOf, normalizeChat, TimClient, TimError } from "../src/timgw.js";

test("backoffDelay doubles from min, caps at max, and takes the jitter share off", () => {
  const cases = [
    { attempt: 1, opts: { min: 500, max: 30000, jitter: 0 }, rnd: 0.7, want: 500 },
    { attempt: 2, opts: { min: 500, max: 30000, jitter: 0 }, rnd: 0.7, want: 1000 },
    { attempt: 4, opts: { min: 500, max: 30000, jitter: 0 }, rnd: 0.7, want: 4000 },
    { attempt: 20, opts: { min: 500, max: 30000, jitter: 0 }, rnd: 0.7, want: 30000 },
    { attempt: 3, opts: { min: 100, max: 30000, jitter: 0.5 }, rnd: 1, want: 200 }, // 400 less half
    { attempt: 3, opts: { min: 100, max: 30000, jitter: 0.5 }, rnd: 0, want: 400 },
    { attempt: 0, opts: { min: 100, max: 1000, jitter: 0 }, rnd: 0, want: 100 },
  ];
  for (const c of cases) {
    assert.equal(backoffDelay(c.attempt, c.opts, () => c.rnd), c.want, JSON.stringify(c));
  }
});

test("normalizeChat turns numeric strings into numbers and marks offline", () => {
  const m = normalizeChat({ id: "m1", from: "a", to: "b", chatType: "2", msgType: "1", seq: "7", createTime: "1700000000000", content: 5 }, true);
  assert.deepEqual(m, { id: "m1", from: "a", to: "b", chatType: 2, msgType: 1, content: "5", createTime: 1700000000000, seq: 7, offline: true });
  const g = normalizeChat({ id: "g1", from: "a", groupId: "room", content: "x", recalled: "true" });
  assert.equal(g.chatType, 1, "a chat with a groupId and no chatType is a group chat");
  assert.equal(g.recalled, true);
  assert.equal(g.offline, false);
});

test("chatsOf flattens a cmd 20 answer in seq order and names group chats", () => {
  const got = chatsOf({
    userId: "bob",
    friends: { alice: [{ id: "p2", seq: 2 }, { id: "p1", seq: 1 }] },
    groups: { room: [{ id: "g1", seq: "3" }] },
    cursor: 9,
  });
  assert.deepEqual(got.map((m) => m.id), ["p1", "p2", "g1"]);
  assert.equal(got[2].groupId, "room");
  assert.deepEqual(chatsOf(null), []);
  assert.deepEqual(chatsOf({ friends: { x: "not a list" } }), []);
});

test("TimClient refuses options it cannot work with", () => {
  const WebSocket = function () {};
  assert.throws(() => new TimClient({ userId: "a", WebSocket }), TimError);
  assert.throws(() => new TimClient({ url: "ws://127.0.0.1:1/", WebSocket }), /userId or options.token/);
  const c = new TimClient({ url: "ws://127.0.0.1:1/", userId: "a", WebSocket });
  assert.equal(c.state, "idle");
  assert.equal(c.options.reconnectMinDelay, 500);
});

test("requests while not connected reject at once (chats too, without the outbox)", async () => {
  const c = new TimClient({ url: "ws://127.0.0.1:1/", userId: "a", WebSocket: function () {}, outbox: false });
  await assert.rejects(c.sendPrivate("b", "hi"), (e) => e instanceof TimError && /not connected/.test(e.message));
  assert.equal(c.typing({ to: "b" }), false);
});

/** FakeSocket stands in for a WebSocket: the test reads what the client sent and answers. */
class FakeSocket {
  static last = null;
  constructor(url) { this.url = url; this.readyState = 0; this.sent = []; FakeSocket.last = this; setTimeout(() => { this.readyState = 1; this.onopen?.({}); }); }
  send(data) { this.sent.push(JSON.parse(data)); }
  close(code = 1000, reason = "") { if (this.readyState === 3) return; this.readyState = 3; setTimeout(() => this.onclose?.({ code, reason })); }
  push(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
}
const tick = () => new Promise((r) => setTimeout(r, 5));

test("answers with numbers as strings, refusals, and late answers to timed-out requests", async (t) => {
  const c = new TimClient({ url: "ws://fake/", userId: "alice", WebSocket: FakeSocket, fetchOffline: false, heartbeatInterval: 0, requestTimeout: 50 });
  t.after(() => c.close());
  const p = c.connect();
  await tick();
  const ws = FakeSocket.last;
  assert.deepEqual(ws.sent[0], { cmd: 5, userId: "alice" });
  ws.push({ cmd: "6", code: "10007", user: { userId: "alice" } });
  assert.equal((await p).userId, "alice");

  // A chat whose answer comes too late: it rejects, and its late answer is not taken for
  // the next chat's.
  const slow = c.sendPrivate("bob", "slow", { id: "m1" });
  await assert.rejects(slow, (e) => /chat m1 not acknowledged within 50 ms/.test(e.message) && e.id === "m1" && e.written === true);
  assert.deepEqual(c.outbox, [], "a timed-out chat leaves the outbox");
  const next = c.sendPrivate("bob", "next", { id: "m2" });
  ws.push({ cmd: "12", code: "10000", data: { id: "m1", seq: "1" } });
  ws.push({ cmd: "12", code: "10001", msg: "receiver offline", data: { id: "m2", seq: "2" } });
  assert.deepEqual(await next, { id: "m2", seq: 2, code: 10001, msg: "receiver offline" });

  // A refusal rejects with the gateway's code.
  const refused = c.joinGroup("g");
  ws.push({ cmd: 8, code: 10012, msg: "join group failed" });
  await assert.rejects(refused, (e) => e instanceof TimError && e.code === 10012 && e.response.msg === "join group failed");

  // A chat pushed with string numbers, and its duplicate, make one event.
  const got = [];
  c.on("message", (m) => got.push(m));
  ws.push({ cmd: "11", id: "x1", from: "bob", to: "alice", chatType: "2", content: "hi", seq: "3" });
  ws.push({ cmd: "11", id: "x1", from: "bob", to: "alice", chatType: "2", content: "hi", seq: "3" });
  assert.deepEqual(got.map((m) => [m.id, m.chatType, m.seq]), [["x1", 2, 3]]);
});

test("heartbeats go out on the interval; a silent connection is dropped and reconnected", async (t) => {
  const c = new TimClient({ url: "ws://fake/", userId: "alice", WebSocket: FakeSocket, fetchOffline: false,
    heartbeatInterval: 20, reconnectMinDelay: 60000, reconnectMaxDelay: 60000, reconnectJitter: 0 });
  t.after(() => c.close()); // also when an assertion fails: no timer may stay behind
  const p = c.connect();
  await tick();
  const ws = FakeSocket.last;
  ws.push({ cmd: 6, code: 10007, user: { userId: "alice" } });
  await p;
  const closed = c.once("close"), reconnecting = c.once("reconnecting");
  assert.deepEqual(await closed, { code: 4000, reason: "heartbeat timeout", willReconnect: true });
  assert.deepEqual(await reconnecting, { attempt: 1, delay: 60000 });
  assert.ok(ws.sent.some((f) => f.cmd === 13), "no heartbeat (cmd 13) was sent");
  assert.equal(ws.readyState, 3, "the silent socket was closed");
});

test("a request the gateway does not know (10014 in its own cmd) rejects at once", async (t) => {
  const c = new TimClient({ url: "ws://fake/", userId: "alice", WebSocket: FakeSocket, fetchOffline: false, heartbeatInterval: 0 });
  t.after(() => c.close());
  const p = c.connect();
  await tick();
  const ws = FakeSocket.last;
  ws.push({ cmd: 6, code: 10007, user: { userId: "alice" } });
  await p;
  const r = c.receipt({ to: "bob" }, { read: 3 });
  assert.deepEqual(ws.sent.at(-1), { cmd: 25, to: "bob", read: 3 });
  ws.push({ cmd: 25, code: 10014, msg: "unsupported cmd 25" });
  await assert.rejects(r, (e) => e.code === 10014);
});

test("outbox: chats cut off or sent while reconnecting are written again after the login, in order, once answered", async (t) => {
  const c = new TimClient({ url: "ws://fake/", userId: "alice", WebSocket: FakeSocket, fetchOffline: false, heartbeatInterval: 0,
    reconnectMinDelay: 10, reconnectMaxDelay: 10, reconnectJitter: 0, maxOutbox: 4 });
  t.after(() => c.close());
  const p = c.connect();
  await tick();
  let ws = FakeSocket.last;
  ws.push({ cmd: 6, code: 10007, user: { userId: "alice" } });
  await p;
  const s1 = c.sendPrivate("bob", "one", { id: "m1" });
  const s2 = c.sendPrivate("bob", "two", { id: "m2" });
  assert.deepEqual(ws.sent.slice(1).map((f) => f.id), ["m1", "m2"]);
  ws.close(1006, "network"); // no answer came
  await c.once("reconnecting");
  const s3 = c.sendPrivate("bob", "three", { id: "m3" }); // while reconnecting: it waits
  const s4 = c.sendPrivate("bob", "four", { id: "m4" });
  assert.deepEqual(c.outbox, ["m1", "m2", "m3", "m4"]);
  await assert.rejects(c.sendPrivate("bob", "five", { id: "m5" }), /outbox full: 4 chats/);
  await c.once("open");
  ws = FakeSocket.last;
  assert.deepEqual(ws.sent.map((f) => f.cmd), [5], "nothing before the login");
  ws.push({ cmd: 6, code: 10007, user: { userId: "alice" } });
  await c.once("login");
  assert.deepEqual(ws.sent.slice(1).map((f) => [f.cmd, f.id, f.content]), [[11, "m1", "one"], [11, "m2", "two"], [11, "m3", "three"], [11, "m4", "four"]]);
  ws.push({ cmd: 12, code: 10000, data: { id: "m1", seq: 1, duplicate: true } });
  ws.push({ cmd: 12, code: 10025, msg: "not a member", data: { id: "m2" } });
  ws.push({ cmd: 12, code: 10034, msg: "server shutting down", data: { id: "m3" } });
  ws.push({ cmd: 12, code: 10000, data: { id: "m4", seq: 2 } });
  assert.deepEqual(await s1, { id: "m1", seq: 1, duplicate: true, code: 10000 });
  await assert.rejects(s2, (e) => e.code === 10025); // final: not resent
  assert.deepEqual(await s4, { id: "m4", seq: 2, code: 10000 });
  assert.deepEqual(c.outbox, ["m3"], "10034 keeps the chat for the next login");
  ws.close(1001, "server shutting down");
  await c.once("open");
  ws = FakeSocket.last;
  ws.push({ cmd: 6, code: 10007, user: { userId: "alice" } });
  await c.once("login");
  assert.deepEqual(ws.sent.slice(1).map((f) => f.id), ["m3"]);
  ws.push({ cmd: 12, code: 10001, data: { id: "m3", seq: 3 } });
  assert.equal((await s3).seq, 3);

  // close() fails what is left with a clear error.
  const s6 = c.sendPrivate("bob", "six", { id: "m6" });
  c.close();
  await assert.rejects(s6, /client closed: chat m6 was not acknowledged/);
  assert.deepEqual(c.outbox, []);
});
