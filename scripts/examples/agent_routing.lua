-- agent_routing.lua: customers write to a bot; an online agent answers them, as the bot.
-- hooks.senders must list the bot; hooks.vars.agent_routing: {bot, agents, idle}.
local cfg = tim.vars("agent_routing", {
  bot    = { type = "string", default = "bot" },
  agents = { type = "strings", default = {} },
  idle   = { type = "number", default = 600 }, -- seconds a customer keeps its agent
})
local is_agent = {}
for _, a in ipairs(cfg.agents) do is_agent[a] = true end

local function pick(customer) -- the customer's agent if online, else the least busy one
  local a = tim.kv_get("agent:" .. customer)
  if a and tim.is_online(a) then return a end
  local best, load
  for _, c in ipairs(cfg.agents) do
    local n = tim.counter("load:" .. c)
    if tim.is_online(c) and (not best or n < load) then best, load = c, n end
  end
  if best then tim.incr_sliding("load:" .. best, 1, cfg.idle) end
  return best
end

local M = {}
function M.message(msg)
  if msg.to == cfg.bot and not is_agent[msg.from] then -- a question: stored customer<->bot
    local a = pick(msg.from)
    if a then tim.kv_set("agent:" .. msg.from, a, cfg.idle); tim.deliver_to(a) end
  elseif is_agent[msg.from] and tim.kv_get("agent:" .. msg.to) == msg.from then -- an answer
    tim.kv_set("agent:" .. msg.to, msg.from, cfg.idle)
    tim.send { from = cfg.bot, to = msg.to, content = msg.content, msgType = msg.msgType }
    return "drop"
  end
end
return M
