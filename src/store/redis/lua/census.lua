--[[
census.lua: puts one agent's census field (see "Census" in lib.lua) right
from its state, when a read found the two apart (an agent tripped before
the census existed, a field edited by hand, a corrupt state). Atomic: a
script that changes the state meanwhile runs before or after it, never
between. After load.lua, whose checks it uses.

KEYS[1] PREFIX:{AGENT}:state   KEYS[2] PREFIX:{AGENT}:probes
KEYS[3] PREFIX:not_closed
ARGV[1] agent id

Return value: the field's value now ("corrupt" for a state load.lua
refuses), "" when it was deleted (a closed agent, or no hash).
]]

return guard(function()
  if #KEYS ~= 3 or #ARGV ~= 1 then
    raise('invalid argument', 'expected 3 keys and 1 argument')
  end
  local ok, s = pcall(load)
  local entry
  if not ok then
    -- `corrupt` raised: load.lua's own census write needs 5 keys.
    if not (type(s) == 'table' and s.fleet_breaker) then error(s, 0) end
    entry = 'corrupt'
  elseif s then
    entry = census_entry(s.state, s.forced_until_ms)
  end
  if entry then
    redis.call('HSET', KEYS[3], ARGV[1], entry)
  else
    redis.call('HDEL', KEYS[3], ARGV[1])
  end
  return entry or ''
end)
