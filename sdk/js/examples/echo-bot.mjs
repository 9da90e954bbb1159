// echo-bot: a timgw user that answers every private message with its echo, and every
// group message that mentions it. It reconnects by itself when the connection is lost.
//
//   node --experimental-websocket examples/echo-bot.mjs [ws://localhost:8888/] [user] [group...]
//
// (Node 22 and later have the global WebSocket without the flag.)
import { TimClient } from "../src/timgw.js";

const [url = "ws://localhost:8888/", userId = "echo-bot", ...groups] = process.argv.slice(2);
const bot = new TimClient({ url, userId });

bot.on("login", async ({ user, reconnect }) => {
  console.log(`${reconnect ? "signed in again" : "signed in"} as ${user.userId}`);
  if (reconnect) return; // the SDK joins the groups again by itself
  for (const g of groups) {
    await bot.joinGroup(g).then(() => console.log(`joined ${g}`), (e) => console.error(`join ${g}: ${e.message}`));
  }
});

bot.on("message", async (m) => {
  if (m.from === bot.user.userId) return; // our own, from another device
  if (m.offline) console.log(`kept while away: ${m.from}: ${m.content}`);
  try {
    if (m.chatType === 2) await bot.sendPrivate(m.from, `echo: ${m.content}`);
    else if (m.content.includes("@" + bot.user.userId)) await bot.sendGroup(m.groupId, `echo to ${m.from}: ${m.content}`);
  } catch (e) {
    console.error(`reply to ${m.from}: ${e.message}`); // e.code: the gateway's status code
  }
});

bot.on("typing", (t) => console.log(`${t.from} is ${t.state}`));
bot.on("reconnecting", ({ attempt, delay }) => console.log(`connection lost; attempt ${attempt} in ${delay} ms`));
bot.on("error", (e) => console.error(`error: ${e.message}`));

await bot.connect();
process.on("SIGINT", () => { bot.close(); process.exit(0); });
