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

test("requests while not connected reject at once", async () => {
  const c = new TimClient({ url: "ws://127.0.0.1:1/", userId: "a", WebSocket: function () {} });
  await assert.rejects(c.sendPrivate("b", "hi"), (e) => e instanceof TimError && /not connected/.test(e.message));
  assert.equal(c.typing({ to: "b" }), false);
});
