--[[
record.lua: records the outcome of a call (model::record).

KEYS[1..5], ARGV[1..12]: see lib.lua. Then:
  ARGV[13] permit id of the ticket (the lease name, for a probe)
  ARGV[14] generation of the ticket (decimal)
  ARGV[15] outcome: success, failure or neutral

Creates the agent (every hash field, and SADD to PREFIX:agents) on first use.
A ticket of another generation, or a probe whose lease has lapsed, only
stamps last_success_ms / last_failure_ms.

Return value: the common array of lib.lua, nothing more.
]]

return guard(function()
  local c = setup(15)
  local permit = ARGV[13]
  -- Compared as canonical decimal text, so any u64 generation is exact.
  local generation = string.match(ARGV[14], '^0*(%d+)$')
  if generation == nil or #generation > 20 then
    raise('invalid argument', 'ARGV[14] (ticket generation) is ' .. show(ARGV[14])
      .. ', expected a non-negative integer')
  end
  local outcome = ARGV[15]
  if outcome ~= 'success' and outcome ~= 'failure' and outcome ~= 'neutral' then
    raise('invalid argument', 'ARGV[15] (outcome) is ' .. show(outcome)
      .. ', expected success, failure or neutral')
  end
  local s = load() or fresh(c)
  -- As in the model: a force expiring in `refresh` makes the ticket stale.
  local tr = refresh(s, c)
  if tr ~= nil or generation ~= int(s.generation) then
    stamp(s, c, outcome)
  elseif s.state == 'closed' then
    count(s, c, outcome)
    tr = nil
    if outcome == 'failure' and s.failure_count >= c.failure_threshold then
      tr = open(s, c, 'failure_threshold')
    end
  elseif s.state == 'half_open' then
    local index
    for i, p in ipairs(s.probes) do
      if p.id == permit then index = i break end
    end
    tr = nil
    if index == nil then
      -- The lease lapsed and its permit went back to the pool.
      stamp(s, c, outcome)
    else
      table.remove(s.probes, index)
      op(s, 'ZREM', KEYS[2], permit)
      -- model::count_probe: failure_count counts the closed state only, so
      -- a probe leaves it as the opening left it.
      stamp(s, c, outcome)
      if outcome == 'success' then
        s.success_count = s.success_count + 1
        s.half_open_successes = s.half_open_successes + 1
        if s.half_open_successes >= c.half_open_max_calls then
          close(s, c)
          tr = transition(s, c, 'closed', 'probes_succeeded')
        end
      elseif outcome == 'failure' then
        s.success_count = 0
        tr = open(s, c, 'probe_failed')
      end
    end
  else
    -- open, forced_open, forced_closed: counted, never a transition.
    count(s, c, outcome)
    tr = nil
  end
  save(s, c, tr)
  return reply(s, c, tr)
end)
