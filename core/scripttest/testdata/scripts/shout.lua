-- shout.lua: a test script. Refuses messages in capitals, upper-cases "hi",
-- denies joins to "secret", refuses logins of "banned".
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
return M
