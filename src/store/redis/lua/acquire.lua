--[[
acquire.lua: asks for a permit to call an agent (model::acquire).

KEYS[1..6], ARGV[1..12] and the policies (last): see lib.lua. Then:
  ARGV[13] permit id: names the probe lease if the permit is a half-open probe

Creates the agent (every hash field, and SADD to PREFIX:agents) on first use.
A closed circuit that exists already is decided with one HGETALL and no write.

Return value: the common array of lib.lua, then the decision:
  [19] "granted"   [20] the generation granted in  [21] 1 for a probe holding a lease, else 0
  [19] "rejected"  [20] the state that refused      [21] retry_after_ms, or -1 when unknown
]]

return guard(function()
  local c = begin(14)
  local permit = ARGV[13]
  local s = load() or fresh(c)
  local tr = refresh(s, c)
  local decision
  if s.state == 'closed' or s.state == 'forced_closed' then
    decision = { 'granted', s.generation, 0 }
  elseif s.state == 'forced_open' then
    local retry
    if s.forced_until_ms ~= 0 then retry = math.max(s.forced_until_ms - c.now, 0) end
    decision = reject(s, retry)
  elseif s.state == 'open' and c.now < s.open_until_ms then
    decision = reject(s, s.open_until_ms - c.now)
  elseif s.state == 'open' then
    -- The backoff elapsed: this acquire moves the circuit to half-open and
    -- is itself granted the first probe.
    s.half_open_successes = 0
    tr = transition(s, c, 'half_open', 'backoff_elapsed')
    decision = grant_probe(s, c, permit)
  elseif #s.probes + s.half_open_successes < c.half_open_max_calls then
    decision = grant_probe(s, c, permit)
  else
    local retry
    if #s.probes > 0 then retry = math.max(s.probes[1].deadline - c.now, 0) end
    decision = reject(s, retry)
  end
  save(s, c, tr)
  return reply(s, c, tr, decision[1], decision[2], decision[3])
end)
