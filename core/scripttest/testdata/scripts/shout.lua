-- shout.lua: a test script. Refuses messages in capitals, upper-cases "hi",
-- denies joins to "secret", refuses logins of "banned", drops the bot's user.online
-- events and marks offline-message events high priority.
local M = {}
function M.message(msg)
  if msg.content ~= "" and msg.content == msg.content:upper() and msg.content:find("%a") then
    return "reject", "no shouting"
  end
  if msg.content == "hi" then msg.content = "HI!" end
end
function M.join(req)
  if req.group == "secret" then return "deny", "members only" end
end
function M.auth(req)
  if req.userId == "banned" then return "reject", "banned user" end
end
function M.event(ev)
  if ev.type == "user.online" and ev.user == "bot" then return "drop" end
  if ev.type == "message.offline" then ev.extra.priority = "high"; ev.extra.n = #ev.offline_users end
end
return M
