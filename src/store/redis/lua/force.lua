--[[
force.lua: the operator override (model::force); a transition of its own.

KEYS[1..6], ARGV[1..12] and the policies (last): see lib.lua. Then:
  ARGV[13] mode: open (forced_open), closed (forced_closed) or auto (end any force)
  ARGV[14] ttl_ms bounding the force, or "" to hold it until changed;
           ignored by auto

As model::force, no refresh first: the transition's `from` is the stored
state, even a force whose expiry has passed.

It repairs a corrupt hash as reset does: every field is rewritten, a corrupt
one from its fresh value (see `load_for_repair` in load.lua).

Return value: nil, and nothing written, when the agent's hash does not
exist; else the common array of lib.lua.
]]

return guard(function()
  local c = begin(15)
  local mode = ARGV[13]
  if mode ~= 'open' and mode ~= 'closed' and mode ~= 'auto' then
    raise('invalid argument', 'ARGV[13] (mode) is ' .. show(mode) .. ', expected open, closed or auto')
  end
  -- 0 stands for "no expiry", as in the hash.
  local forced_until = 0
  if ARGV[14] ~= '' then
    forced_until = c.now + arg_uint(14, 'ttl_ms')
    if forced_until >= MAX_EXACT then
      raise('invalid argument', 'ARGV[14] (ttl_ms) ends the force past 2^53 ms')
    end
  end
  local s = load_for_repair(c)
  if s == nil then return false end
  local to, reason
  if mode == 'auto' then
    close(s, c)
    to, reason = 'closed', 'force_cleared'
  elseif mode == 'open' then
    s.open_until_ms = forced_until
    to, reason = 'forced_open', 'forced'
  else
    s.open_until_ms = 0
    to, reason = 'forced_closed', 'forced'
  end
  if mode ~= 'auto' then
    s.forced_until_ms = forced_until
    s.half_open_successes = 0
  end
  local tr = transition(s, c, to, reason)
  save_repaired(s, c, tr)
  return reply(s, c, tr)
end)
