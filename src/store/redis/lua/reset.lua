--[[
reset.lua: the admin reset (model::reset): closed, counters zero, backoff
base, probes cleared; a transition of its own.

KEYS[1..6], ARGV[1..12] and the policies: see lib.lua; nothing more.

As model::reset, no refresh first: the transition's `from` is the stored
state, even a force whose expiry has passed.

It repairs a corrupt hash: every field is rewritten, a corrupt one from its
fresh value (see `load_for_repair` in load.lua; an unreadable state counts as
closed, so `from` is closed).

Return value: nil, and nothing written, when the agent's hash does not
exist; else the common array of lib.lua.
]]

return guard(function()
  local c = begin(13)
  local s = load_for_repair(c)
  if s == nil then return false end
  close(s, c)
  s.success_count = 0
  s.total_rejections = 0
  local tr = transition(s, c, 'closed', 'reset')
  save_repaired(s, c, tr)
  return reply(s, c, tr)
end)
