-- moderation.lua: banned words, per-user rate limit, repeated-message flood.
--
-- Hook: message. Configured by hooks.vars.moderation (read once, at load):
--   action        "mask" (default): each character of a banned word becomes "*" and the
--                 message goes through; "reject": the message is refused, code 10027.
--   words         list of banned words or phrases, matched ignoring case.
--   words_file    optional word-list file of the scripts directory (one per line, #
--                 comments), used as well as words.
--   whole_words   true (default): a word only matches between non-letters/digits
--                 ("class" does not match "ass"); CJK words match inside sentences.
--   rate_limit    messages a user may send per rate_window seconds; more are refused
--                 with code 10028 (0: off). Default 20 per 10 s.
--   rate_window   seconds, default 10.
--   flood_max     identical messages a user may send per flood_window seconds; more are
--                 refused with code 10028 (0: off). Default 5 per 30 s.
--   flood_window  seconds, default 30.
--   exempt        list of user ids never moderated (e.g. the system user).
local tim = tim
-- The keys this script reads: a reload giving one a wrong type is refused.
local cfg = tim.vars("moderation", {
  action       = { type = "string", default = "mask", one_of = { "mask", "reject" } },
  words        = { type = "strings", default = {} },
  words_file   = { type = "string", default = "" },
  whole_words  = { type = "boolean", default = true },
  rate_limit   = { type = "number", default = 20 },
  rate_window  = { type = "number", default = 10 },
  flood_max    = { type = "number", default = 5 },
  flood_window = { type = "number", default = 30 },
  exempt       = { type = "list", default = {} },
})

local action = cfg.action
local whole = cfg.whole_words

local matchers = {}
if #cfg.words > 0 then
  matchers[#matchers + 1] = tim.words(cfg.words, { whole_words = whole })
end
if cfg.words_file ~= "" then
  matchers[#matchers + 1] = tim.words(cfg.words_file, { whole_words = whole })
end
local nmatchers = #matchers

-- The conditions are checked in Go before any Lua runs (tim.guard): a message with no
-- banned word, from a sender under the rate and not repeating itself, never enters this
-- script. ctx.guard says which one fired.
tim.guard {
  words = cfg.words, words_file = cfg.words_file, whole_words = whole,
  rate = cfg.rate_limit > 0 and { limit = cfg.rate_limit, window = cfg.rate_window } or nil,
  flood = cfg.flood_max > 0 and { max = cfg.flood_max, window = cfg.flood_window } or nil,
  exempt = cfg.exempt,
}

local M = {}

function M.message(msg, ctx)
  local guard = ctx.guard
  if guard == "rate" then
    return "reject", "too many messages, slow down", tim.RATE_LIMITED
  elseif guard == "flood" then
    return "reject", "the same message too many times", tim.RATE_LIMITED
  end
  local content = msg.content
  for i = 1, nmatchers do
    local m = matchers[i]
    if action == "reject" then
      if m:find(content) then
        return "reject", "message contains a banned word", tim.REJECTED
      end
    else
      local masked, n = m:mask(content)
      if n > 0 then
        content = masked
        msg.content = masked
      end
    end
  end
end

return M
