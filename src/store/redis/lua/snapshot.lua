--[[
snapshot.lua: the agent's current state (model::refresh alone): drops lapsed
probe leases and ends an expired force (a transition, published).

KEYS[1..6], ARGV[1..12] and the policies: see lib.lua; nothing more.

Writes nothing unless a lease lapsed, a force expired or the census field
is wrong (see "Census" in lib.lua: this script repairs it).

Return value: nil when the agent's hash does not exist (its census field,
if any, is deleted); else the common array of lib.lua.
]]

return guard(function()
  local c = begin(13)
  c.check_census = true
  local s = load()
  if s == nil then
    if not c.cluster then redis.call('HDEL', KEYS[5], c.agent) end
    return false
  end
  local tr = refresh(s, c)
  save(s, c, tr)
  return reply(s, c, tr)
end)
