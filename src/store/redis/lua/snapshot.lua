--[[
snapshot.lua: the agent's current state (model::refresh alone): drops lapsed
probe leases and ends an expired force (a transition, published).

KEYS[1..4], ARGV[1..11]: see lib.lua; nothing more.

Writes nothing unless a lease lapsed or a force expired.

Return value: nil, and nothing written, when the agent's hash does not
exist; else the common array of lib.lua.
]]

return guard(function()
  local c = setup(11)
  local s = load()
  if s == nil then return false end
  local tr = refresh(s, c)
  save(s, c, tr)
  return reply(s, c, tr)
end)
