--[[
epoch.lua: the identity of an agent's history, ahead of lib.lua in every
script (src/store/redis/scripts.rs), whose load, fresh, transition, save and reply
call the functions below. Self-contained, so it needs nothing of
lib.lua.

The hash field `epoch` of PREFIX:{AGENT}:state holds the microseconds of
Redis TIME when the hash was created (acquire or record on an unknown agent).
A hash deleted (DEL, FLUSHALL, a restart without persistence) and created
again starts at generation 0 under a new epoch, so readers compare
generations only within one epoch. A hash from before epochs has none: 0.
Transition messages carry it as `epoch` (an addition: the other fields are
unchanged), and so do failure-count news; every script answers it as item
[15] of the common reply.
]]

-- A new epoch: microseconds of Redis TIME (always the server's, even with a
-- test clock), exact in a double until the year 2255.
local function new_epoch()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- The stored epoch of the existing hash KEYS[1], from the text of its
-- field `epoch` (false when absent: load.lua reads it with the other fields,
-- in the same HMGET): 0 when it has none; nil and the stored text when it is
-- not an integer from 0 to 2^53 - 1 (load.lua reports it as corrupt, or
-- repairs it with a new epoch).
local function stored_epoch(raw)
  if not raw then return 0 end
  local n = tonumber(raw)
  if not (n and n >= 0 and n < 9007199254740992 and n % 1 == 0) then
    return nil, raw
  end
  return n
end

-- `,"epoch":N` for a transition message (and count news).
local function epoch_json(s)
  return ',"epoch":' .. string.format('%d', s.epoch)
end

