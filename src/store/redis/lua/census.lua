--[[
census.lua: puts one agent's census field (see "Census" in lib.lua) right
from its state hash, when a read found the two apart (an agent tripped
before the census existed, a field edited by hand). Atomic: a script that
changes the state meanwhile runs before or after it, never between.

KEYS[1] PREFIX:{AGENT}:state   KEYS[2] PREFIX:not_closed
ARGV[1] agent id

Return value: the field's value now, "" when it was deleted (a closed
agent, a hash that does not exist or holds no known state).
]]

return guard(function()
  if #KEYS ~= 2 or #ARGV ~= 1 then
    raise('invalid argument', 'expected 2 keys and 1 argument')
  end
  local raw = redis.pcall('HMGET', KEYS[1], 'state', 'forced_until_ms')
  local entry = nil
  if not raw.err and STATES[raw[1]] then
    entry = census_entry(raw[1], to_uint(raw[2]) or 0)
  end
  if entry then
    redis.call('HSET', KEYS[2], ARGV[1], entry)
  else
    redis.call('HDEL', KEYS[2], ARGV[1])
  end
  return entry or ''
end)
