-- banned_words.lua: mask banned words; refuse a sender's messages beyond `rate` per `window` s.
local cfg = tim.vars("banned_words", {
  words  = { type = "strings", default = {} },
  rate   = { type = "number", default = 10 },
  window = { type = "number", default = 10 },
})
local words = tim.words(cfg.words)

return {
  message = function(msg)
    if tim.incr("rate", 1, cfg.window, msg.from) > cfg.rate then
      return "reject", "slow down", tim.RATE_LIMITED
    end
    local masked, n = words:mask(msg.content)
    if n > 0 then msg.content = masked end
  end,
}
