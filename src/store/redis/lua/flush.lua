--[[
flush.lua: applies outcomes a pod counted locally (model::flush).

KEYS[1..6], ARGV[1..12] and the policies (last): see lib.lua. Then:
  ARGV[13] generation the successes were counted in (decimal)
  ARGV[14] successes counted locally
  ARGV[15] last_success_ms of the batch, 0 for none
  ARGV[16] rejections counted locally

Rejections always add to total_rejections. The successes add to
success_count only while the circuit is still closed, in that generation and
with failure_count 0; otherwise they only stamp last_success_ms, which never
moves back. With a rate policy or a quorum, the successes of a closed
circuit in that generation are calls of the window's current bucket.

Return value: nil, and nothing written, when the agent's hash does not
exist; else the common array of lib.lua.
]]

return guard(function()
  local c = begin(17)
  local generation = arg_uint(13, 'batch generation')
  local successes = arg_uint(14, 'successes')
  local last_success = arg_uint(15, 'last_success_ms')
  local rejections = arg_uint(16, 'rejections')
  local s = load()
  if s == nil then return false end
  local tr = refresh(s, c)
  s.total_rejections = s.total_rejections + rejections
  local counted = s.state == 'closed' and s.generation == generation
  if counted and s.failure_count == 0 then
    s.success_count = s.success_count + successes
  end
  if last_success > s.last_success_ms then s.last_success_ms = last_success end
  if counted and successes > 0 and windowed(c) then
    -- Calls of the window, clean or not: they land in the flush's bucket,
    -- and may bring it to minimum_calls over a threshold.
    window_count(s, c, successes, 0, 0, '-')
    local reason = trip_condition(s, c)
    if reason and tr == nil and quorum_met(s, c) then tr = open(s, c, reason) end
  end
  save(s, c, tr)
  return reply(s, c, tr)
end)
