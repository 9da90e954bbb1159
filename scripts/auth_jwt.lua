-- auth_jwt.lua: log in with an HS256 JSON Web Token.
--
-- Hook: auth. Configured by hooks.vars.auth_jwt (read once, at load):
--   secret         HMAC key (required; use "${TIMGW_JWT_SECRET}" in the YAML).
--   issuer         when set, the token's "iss" must equal it.
--   audience       when set, the token's "aud" must contain it.
--   leeway         seconds of clock skew allowed on exp/nbf (default 0).
--   user_claim     the claim holding the user id (default "sub").
--   require_token  true: attempts without a token are rejected; false (default): they
--                  are left to the built-in authenticator (e.g. password logins).
--
-- A valid token logs the client in as its user claim, with the optional claims nick,
-- avatar and groups (a list of group ids joined at login). A login that names a userId
-- must name the token's user. Invalid, expired or not-yet-valid tokens are rejected
-- (code 10010 for cmd 3, 10008 for logins).
local tim = tim
local cfg = tim.vars("auth_jwt", {
  secret        = { type = "string", required = true },
  issuer        = { type = "string", default = "" },
  audience      = { type = "string", default = "" },
  leeway        = { type = "number", default = 0 },
  user_claim    = { type = "string", default = "sub" },
  require_token = { type = "boolean", default = false },
})

local secret = cfg.secret
assert(secret ~= "", "hooks.vars.auth_jwt.secret is required")

local opts = { iss = cfg.issuer, aud = cfg.audience, leeway = cfg.leeway }
local user_claim = cfg.user_claim
local require_token = cfg.require_token

local M = {}

function M.auth(req)
  if req.token == "" then
    if require_token then
      return "reject", "a token is required"
    end
    return nil -- no token: the built-in authenticator decides
  end
  local claims, err = tim.jwt_verify(req.token, secret, opts)
  if not claims then
    return "reject", "invalid token: " .. err
  end
  local user = claims[user_claim]
  if type(user) == "number" then user = string.format("%d", user) end
  if type(user) ~= "string" or user == "" then
    return "reject", "the token has no " .. user_claim .. " claim"
  end
  if req.userId ~= "" and req.userId ~= user then
    return "reject", "the token is not for user " .. req.userId
  end
  local groups = claims.groups
  if type(groups) ~= "table" then groups = nil end
  return "accept", { userId = user, nick = claims.nick, avatar = claims.avatar, groups = groups }
end

return M
