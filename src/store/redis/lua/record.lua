--[[
record.lua: records the outcome of a call (model::record).

KEYS[1..6], ARGV[1..12] and the policies (last): see lib.lua. Then:
  ARGV[13] permit id of the ticket (the lease name, for a probe)
  ARGV[14] generation of the ticket (decimal)
  ARGV[15] outcome: success, failure or neutral
  ARGV[16] 1 when the call was slow (at least slow_call_duration), else 0
  ARGV[17] retry_after_ms the agent asked for with a failure, "" for none
  ARGV[18] the reporting pod's id (for the quorum): [A-Za-z0-9._@/-], 1 to 64 bytes

Creates the agent (every hash field, and SADD to PREFIX:agents) on first use.
A ticket of another generation, or a probe whose lease has lapsed, only
stamps last_success_ms / last_failure_ms.

Return value: the common array of lib.lua, nothing more.
]]

return guard(function()
  local c = begin(19)
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
  local slow = ARGV[16] == '1'
  if not slow and ARGV[16] ~= '0' then
    raise('invalid argument', 'ARGV[16] (slow) is ' .. show(ARGV[16]) .. ', expected 0 or 1')
  end
  local retry_after
  if ARGV[17] ~= '' then retry_after = arg_uint(17, 'retry_after_ms') end
  if outcome ~= 'failure' then retry_after = nil end
  local pod = ARGV[18]
  if #pod > 64 or not string.match(pod, '^[%w%._@/%-]+$') then
    raise('invalid argument', 'ARGV[18] (pod) is ' .. show(pod) .. ', expected 1 to 64 of [A-Za-z0-9._@/-]')
  end
  local s = load() or fresh(c)
  -- As in the model: a force expiring in `refresh` makes the ticket stale.
  local tr = refresh(s, c)
  if tr ~= nil or generation ~= int(s.generation) then
    stamp(s, c, outcome)
  elseif s.state == 'closed' then
    -- model::record on a closed circuit: count, the window, a retry-after,
    -- then (after any counted outcome) the first trip condition, if the
    -- quorum is met.
    count(s, c, outcome)
    tr = nil
    if outcome ~= 'neutral' then
      local failed = outcome == 'failure'
      if windowed(c) then
        window_count(s, c, 1, failed and 1 or 0, slow and 1 or 0, pod)
      end
      if retry_after then
        tr = open(s, c, 'retry_after', retry_after)
      else
        local reason = trip_condition(s, c)
        if reason and quorum_met(s, c) then tr = open(s, c, reason) end
      end
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
        if retry_after then
          tr = open(s, c, 'retry_after', retry_after)
        else
          tr = open(s, c, 'probe_failed')
        end
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
