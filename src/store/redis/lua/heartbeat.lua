--[[
heartbeat.lua: the fleet heartbeat, published by one pod (the lease holder)
so that every pod's subscription is confirmed without each pod pinging.

KEYS[1] PREFIX:heartbeat:lease, a hash {holder = id}, with a TTL
ARGV[1] the caller's holder id
ARGV[2] the lease's TTL in ms
ARGV[3] the channel to publish on (PREFIX:heartbeat)

Takes the lease if it is free, renews it if the caller holds it, and then
publishes ARGV[1] on ARGV[3]; leaves both alone if another pod holds it.
(A hash rather than a string, so that the commands it runs are the ones
the other scripts run, plus PEXPIRE.)

Return value: 1 when the caller holds the lease and published, else 0.
]]

local holder = redis.call('HMGET', KEYS[1], 'holder')[1]
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'holder', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
