-- routing.lua: bots and customer service.
--
-- Hook: message (private chats only). Configured by hooks.vars.routing (read once):
--   bot_prefix   chats to "<bot_prefix><name>" (default "bot:") ...
--   bot_user     ... are delivered to this user instead, with extras.bot = "<name>" and
--                extras.botTo = the original receiver. Empty: off.
--   cs_user      chats to this user id (e.g. "cs") go to one of cs_agents instead, with
--                extras.csQueue = cs_user. Empty: off.
--   cs_agents    list of agent user ids. A customer keeps the agent it talked to within
--                cs_window; otherwise the online agent with the fewest new customers in
--                the window is chosen. When no agent is online the chat stays addressed
--                to cs_user (and is kept for it offline).
--   cs_window    seconds (default 600).
local tim = tim
local cfg = tim.vars("routing", {
  bot_prefix = { type = "string", default = "bot:" },
  bot_user   = { type = "string", default = "" },
  cs_user    = { type = "string", default = "" },
  cs_agents  = { type = "list", default = {} },
  cs_window  = { type = "number", default = 600 },
})

local bot_prefix = cfg.bot_prefix
local bot_user = cfg.bot_user
local cs_user = cfg.cs_user
local cs_window = cfg.cs_window
local agents = {}
for _, a in ipairs(cfg.cs_agents) do agents[#agents + 1] = tostring(a) end

-- pick returns the agent for a customer: the sticky one if online, else the least busy
-- online agent; nil when none is online.
local function pick(customer)
  local best, best_load
  for i = 1, #agents do
    local a = agents[i]
    if tim.is_online(a) then
      if tim.counter("route:cs:pair:" .. customer .. ":" .. a) > 0 then
        return a
      end
      local load = tim.counter("route:cs:load:" .. a)
      if best == nil or load < best_load then
        best, best_load = a, load
      end
    end
  end
  if best then
    tim.incr("route:cs:load:" .. best, 1, cs_window)
    tim.incr("route:cs:pair:" .. customer .. ":" .. best, 1, cs_window)
  end
  return best
end

local M = {}

function M.message(msg, ctx)
  local to = msg.to
  if type(to) ~= "string" or to == "" or msg.groupId ~= "" then return end

  if bot_user ~= "" and bot_prefix ~= "" and to:sub(1, #bot_prefix) == bot_prefix then
    local extras = msg.extras
    extras.bot = to:sub(#bot_prefix + 1)
    extras.botTo = to
    msg.to = bot_user
    return
  end

  if cs_user ~= "" and to == cs_user and #agents > 0 then
    local agent = pick(msg.from)
    if agent then
      msg.extras.csQueue = cs_user
      msg.to = agent
    end
  end
end

return M
