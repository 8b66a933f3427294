--[[
lib.lua: the prelude shared by every fleet-breaker script.

src/store/redis/scripts.rs puts this file, then lua/load.lua (reading and
checking the stored state, and the repair of a corrupt one), in front of each
operation's file (acquire, record, reset, force, snapshot, flush), so the
helpers exist once in the tree. The same text is also one Redis 7 function
library, each operation's file the body of a function (scripts.rs): there
KEYS and ARGV are locals of the library that each function sets first, and
this prelude runs once, when Redis loads the library, where `ipairs` and
`unpack` do not exist yet: top-level code uses plain loops. They are src/model.rs written for Redis; each names the Rust function it
mirrors, and the differential tests hold the two side by side.

KEYS, the same for every script:
  KEYS[1]  PREFIX:{AGENT}:state   hash: the agent's snapshot
  KEYS[2]  PREFIX:{AGENT}:probes  sorted set: probe permit id -> lease deadline (ms)
  KEYS[3]  PREFIX:agents          set of known agent ids
  KEYS[4]  PREFIX:transitions     stream, capped; one field `msg` per transition
  KEYS[5]  PREFIX:not_closed      hash: agent id -> its state, for every agent
                                  not closed (the census: see "Census" below)
  KEYS[6]  PREFIX:{AGENT}:config  hash: the agent's settings (see "Settings")

On a Redis Cluster the client passes KEYS[1..2] and the config key (3 keys,
the agent's slot): KEYS[3..5] live in other slots, which a script may not
touch there. The script then skips the
SADD, the XADD and the census write (it still PUBLISHes, which a cluster
broadcasts to every node) and appends two items to its reply, `created` (1
when it created the agent, else 0) and `census` (see below); the client does
those writes itself right after.

ARGV[1..12], the same for every script (each script's own follow):
  ARGV[1]  agent id
  ARGV[2]  now_override_ms. TEST ONLY: empty in production, where the time is
           Redis TIME; set only by RedisStoreBuilder::clock_override.
  ARGV[3]  pub/sub channel of transitions (PREFIX:events)
  ARGV[4]  transitions_max_len (XADD MAXLEN ~)
  ARGV[5]  failure_threshold
  ARGV[6]  half_open_max_calls
  ARGV[7]  base_backoff_ms
  ARGV[8]  backoff_multiplier, a decimal such as 1.5
  ARGV[9]  max_backoff_ms
  ARGV[10] recovery_timeout_ms
  ARGV[11] pub/sub channel of failure-count news (PREFIX:counts): when the
           failure count leaves zero or returns to it without a transition,
           {"agent_id","generation","failure_count"} is published there, so
           pods stop (or resume) counting successes locally
  ARGV[12] idle_ttl_ms: a write to a closed agent sets its hash to expire
           after this long (PEXPIRE), so an agent nobody calls is forgotten;
           any other state removes the expiry (PERSIST): only a closed
           agent ever expires. 0: never.
and, last of all (after each script's own), ARGV[#ARGV], the trip policies
of the process's config, seven decimals separated by spaces:
  failure_rate_threshold slow_call_duration_ms slow_call_rate_threshold
  window_ms minimum_calls min_reporting_pods backoff_jitter
(a rate of 0 or a slow-call duration of 0: off).

Settings: the config key holds the agent's own settings (model
AgentSettings), field name -> decimal, which override the process's values
above field by field, on every pod (see `begin` in load.lua).

Window: with a rate policy or a quorum above 1, the state hash also holds
one field per bucket of the fleet's calls, `w0` to `w9` (the bucket's index
modulo 10) = `index:calls:failures:slow`, and `reporters` (the pods that
reported a failure or a slow call: `pod=bucket`, comma-separated, latest
first); model/window.rs. Fields stay short, so a hash keeps Redis's compact
listpack encoding (values of at most 64 bytes).

Hash fields are decimal integers, except `state` (closed, open, half_open,
forced_open, forced_closed); a `None` of last_failure_ms, last_success_ms or
forced_until_ms is 0.

The probes key is read only when the state is half_open: every transition
deletes it and only a half-open circuit grants leases, so in any other state
it is empty.

Return value, common to every script (a flat array, numbers as integers):
  [1] now_ms  [2] the transition's JSON message, or "" when there was none
  [3] state  [4] failure_count  [5] success_count  [6] total_rejections
  [7] last_failure_ms  [8] last_success_ms  [9] backoff_ms  [10] open_until_ms
  [11] half_open_successes  [12] generation  [13] forced_until_ms
  [14] probes: an array id, deadline_ms, id, deadline_ms, ... ordered by
       (deadline, id)
  [15] epoch: the identity of the agent's history (see "Epochs" below)
  [16] window: the buckets, `index:calls:failures:slow` comma-separated by
       index  [17] reporters ("" when absent)
  [18] settings: an array name, value, name, value, ... of the agent's settings
then the script's own values (see its header), then, with 3 KEYS only
(a cluster), `created`: 1 or 0, and `census`.

Errors: every argument and every stored field is checked before the first
write (Redis keeps the writes of a script that fails halfway). A bad argument
ends the script with the error reply `ERR fleet-breaker: invalid argument: ...`;
a corrupt stored field (a hash edited by hand, say) with
`ERR fleet-breaker: corrupt data: {"key","field","value","expected"}` (JSON,
the first corrupt field; "value" absent when the field is missing), which the
client reads into StoreError::Corrupt. reset and force do not refuse corrupt
data: they repair it, rewriting every field (see `load_for_repair` in load.lua).

Writes happen last, in `save`, and only for what changed: a closed circuit's
acquire writes nothing at all.

Epochs: the hash field `epoch`, written when the hash is created, names one
history of the agent; see lua/epoch.lua, which comes before this file. An
agent that expired (ARGV[12]) and is called again starts a new epoch.

Census: KEYS[5] holds one field per agent whose state is not closed, its
value the state, followed by ` UNTIL` (ms) for a force with a TTL, so a
reader counts a force past its end as closed without running a script;
`corrupt` for an agent whose stored state a script refused (load.lua). A
script writes the field when the state it saves differs from the state it
loaded (HSET, or HDEL on closing); the snapshot script also checks the field
against the state and repairs it (an agent tripped before the census
existed, a field edited by hand). On a cluster the script appends `census`
to its reply instead: "" for no change, "-" to delete the field, else the
value to set.

Needs Redis 5.0 or later (XADD, and scripts replicated by their effects, so
writing after TIME is allowed); tested on Redis 7.
]]

local FIELDS = {
  'state', 'failure_count', 'success_count', 'total_rejections', 'last_failure_ms',
  'last_success_ms', 'backoff_ms', 'open_until_ms', 'half_open_successes', 'generation',
  'forced_until_ms',
}
local STATES = { closed = true, open = true, half_open = true, forced_open = true, forced_closed = true }
-- Every integer up to 2^53 is exact in a Lua number (a double).
local MAX_EXACT = 9007199254740992
local MAX_U32 = 4294967295

-- Ends the script with `ERR fleet-breaker: <kind>: <detail>` (caught by `guard`).
local function raise(kind, detail)
  error({ fleet_breaker = 'ERR fleet-breaker: ' .. kind .. ': ' .. detail }, 0)
end

-- A value for an error message: quoted, cut short, or `missing`.
local function show(value)
  if value == nil then return 'missing' end
  return string.format('%q', string.sub(tostring(value), 1, 64))
end

-- A stored or passed integer from 0 to 2^53 - 1 as a number, else nil
-- (text such as "banana", "-1", "1.5", "inf"). Lenient as Lua's tonumber is
-- ("1e3" reads as 1000): these run a dozen times per call, so error
-- messages are built only on failure.
local function to_uint(text)
  local n = tonumber(text)
  if n and n >= 0 and n < MAX_EXACT and n % 1 == 0 then return n end
  return nil
end

local function not_uint(kind, where, text)
  raise(kind, where .. ' is ' .. show(text) .. ', expected an integer from 0 to 2^53 - 1')
end

local function arg_uint(i, name)
  local n = to_uint(ARGV[i])
  if n == nil then not_uint('invalid argument', 'ARGV[' .. i .. '] (' .. name .. ')', ARGV[i]) end
  return n
end

-- An integer as decimal text, for hash fields and JSON (never 1.7e+12).
local function int(n)
  return string.format('%d', n)
end

-- Milliseconds as decimal seconds, as serde_json writes model::backoff_seconds:
-- 5062 -> 5.062, 1500 -> 1.5, 2000 -> 2.0. The text is exactly ms / 1000, so
-- a JSON reader gets the double Rust computes, backoff_ms as f64 / 1000.0
-- (cjson's %.14g could not promise that).
local function seconds(ms)
  local text = string.gsub(string.format('%d.%03d', math.floor(ms / 1000), ms % 1000), '0+$', '')
  if string.sub(text, -1) == '.' then text = text .. '0' end
  return text
end

-- Runs `body`; a `raise` inside becomes the script's error reply.
local function guard(body)
  local ok, result = pcall(body)
  if ok then return result end
  if type(result) == 'table' and result.fleet_breaker then
    return redis.error_reply(result.fleet_breaker)
  end
  error(result, 0)
end

-- The seven numbers of the policies' argument (see above), whitespace-separated.
local POLICIES = '^%s*(%S+)%s+(%S+)%s+(%S+)%s+(%S+)%s+(%S+)%s+(%S+)%s+(%S+)%s*$'

-- Checks the KEYS and ARGV counts, parses ARGV[1..12] and the policies
-- (ARGV[#ARGV]) and reads the time. `argc` counts every argument.
-- `c` is made by one constructor, and the policies parsed by one match:
-- growing a table field by field, or a gmatch loop, cost each script
-- several microseconds of Redis's time.
local function setup(argc)
  if #KEYS ~= 6 and #KEYS ~= 3 then
    raise('invalid argument', 'expected 6 keys (3 on a cluster), got ' .. #KEYS)
  end
  if #ARGV ~= argc then
    raise('invalid argument', 'expected ' .. argc .. ' arguments, got ' .. #ARGV)
  end
  if #ARGV[1] == 0 then raise('invalid argument', 'ARGV[1] (agent id) is empty') end
  local m = tonumber(ARGV[8])
  if m == nil or m ~= m or m < 1 or m == math.huge then
    raise('invalid argument', 'ARGV[8] (backoff_multiplier) is ' .. show(ARGV[8])
      .. ', expected a number of at least 1')
  end
  local p = { string.match(ARGV[#ARGV], POLICIES) }
  for i = 1, 7 do p[i] = tonumber(p[i]) end
  if not (p[1] and p[2] and p[3] and p[4] and p[5] and p[6] and p[7]) then
    raise('invalid argument', 'ARGV[' .. #ARGV .. '] (policies) is ' .. show(ARGV[#ARGV])
      .. ', expected seven numbers')
  end
  local now
  if ARGV[2] ~= '' then
    now = arg_uint(2, 'now_override_ms')
  else
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return {
    agent = ARGV[1],
    now = now,
    -- A cluster: the client writes PREFIX:agents and PREFIX:transitions.
    cluster = #KEYS == 3,
    config_key = KEYS[#KEYS],
    channel = ARGV[3],
    counts_channel = ARGV[11],
    max_len = arg_uint(4, 'transitions_max_len'),
    failure_threshold = arg_uint(5, 'failure_threshold'),
    half_open_max_calls = arg_uint(6, 'half_open_max_calls'),
    base_backoff_ms = arg_uint(7, 'base_backoff_ms'),
    multiplier = m,
    max_backoff_ms = arg_uint(9, 'max_backoff_ms'),
    recovery_timeout_ms = arg_uint(10, 'recovery_timeout_ms'),
    idle_ttl_ms = arg_uint(12, 'idle_ttl_ms'),
    failure_rate = p[1],
    slow_call_ms = p[2],
    slow_call_rate = p[3],
    window_ms = p[4],
    minimum_calls = p[5],
    min_reporting_pods = p[6],
    jitter = p[7],
    -- Set by read_settings (load.lua), and by a script on a cluster.
    settings = false,
    created = false,
    census = false,
    check_census = false,
  }
end

-- Snapshot::fresh: closed, zero, base backoff; written whole by `save`.
local function fresh(c)
  return {
    exists = false, probes = {}, ops = {}, state = 'closed', failure_count = 0,
    success_count = 0, total_rejections = 0, last_failure_ms = 0, last_success_ms = 0,
    backoff_ms = c.base_backoff_ms, open_until_ms = 0, half_open_successes = 0,
    generation = 0, forced_until_ms = 0, epoch = new_epoch(),
    buckets = {}, reporters = {},
  }
end


-- Queues a write of the probes key; `save` runs them in order.
local function op(s, ...)
  s.ops[#s.ops + 1] = { ... }
end

-- Byte-wise a < b, as Rust orders strings (Lua's `<` follows the locale).
local function bytes_lt(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

-- BreakerConfig::windowed: a rate policy or a quorum keeps the window.
local function windowed(c)
  return c.failure_rate > 0 or c.slow_call_rate > 0 or c.min_reporting_pods > 1
end

-- model::bucket_index, and whether bucket `i` is in the window at `current`.
local function bucket_now(c)
  return math.floor(c.now / math.max(math.floor(c.window_ms / 10), 1))
end
local function in_window(i, current)
  return i <= current and current - i < 10
end

-- Window::counts: calls, failures, slow, reporting pods.
local function window_counts(s, c)
  local current = bucket_now(c)
  local calls, failures, slow, pods = 0, 0, 0, 0
  for _, b in ipairs(s.buckets) do
    if in_window(b.index, current) then
      calls = calls + b.calls
      failures = failures + b.failures
      slow = slow + b.slow
    end
  end
  for _, r in ipairs(s.reporters) do
    if in_window(r.bucket, current) then pods = pods + 1 end
  end
  return calls, failures, slow, pods
end

-- Window::count: into the current bucket (dropping the buckets outside the
-- window); a failure or a slow call makes `pod` a reporter under a quorum.
local function window_count(s, c, calls, failures, slow, pod)
  local current = bucket_now(c)
  local kept = {}
  for _, b in ipairs(s.buckets) do
    if in_window(b.index, current) then kept[#kept + 1] = b end
  end
  local last = kept[#kept]
  if last == nil or last.index ~= current then
    last = { index = current, calls = 0, failures = 0, slow = 0 }
    kept[#kept + 1] = last
  end
  last.calls = last.calls + calls
  last.failures = last.failures + failures
  last.slow = last.slow + slow
  s.buckets = kept
  if failures + slow > 0 and c.min_reporting_pods > 1 then
    local reporters = {}
    for _, r in ipairs(s.reporters) do
      if r.pod ~= pod then reporters[#reporters + 1] = r end
    end
    reporters[#reporters + 1] = { pod = pod, bucket = current }
    table.sort(reporters, function(a, b)
      if a.bucket ~= b.bucket then return a.bucket > b.bucket end
      return bytes_lt(a.pod, b.pod)
    end)
    while #reporters > c.min_reporting_pods do table.remove(reporters) end
    s.reporters = reporters
  end
end

-- model::trip_condition: the first trip that holds for a closed circuit.
local function trip_condition(s, c)
  if s.state ~= 'closed' then return nil end
  if s.failure_count >= c.failure_threshold then return 'failure_threshold' end
  if not windowed(c) then return nil end
  local calls, failures, slow = window_counts(s, c)
  if calls < c.minimum_calls then return nil end
  if c.failure_rate > 0 and failures / calls >= c.failure_rate then return 'failure_rate' end
  if c.slow_call_rate > 0 and slow / calls >= c.slow_call_rate then return 'slow_call_rate' end
  return nil
end

-- model::quorum_met
local function quorum_met(s, c)
  if c.min_reporting_pods <= 1 then return true end
  local _, _, _, pods = window_counts(s, c)
  return pods >= c.min_reporting_pods
end

-- model::jittered: floor(backoff x (1 + d)), d from SHA-1 of agent,
-- generation and time, as the model draws it.
local function jittered(c, backoff_ms, generation)
  if c.jitter <= 0 then return backoff_ms end
  local h = redis.sha1hex(c.agent .. ':' .. int(generation) .. ':' .. int(c.now))
  local u = tonumber(string.sub(h, 1, 8), 16)
  local d = c.jitter * (2 * u / 4294967295 - 1)
  return math.floor(backoff_ms * (1 + d))
end

-- The window's hash fields: one per bucket, `w` and the bucket's index
-- modulo 10 (each short, so the hash keeps Redis's compact encoding), then
-- the reporters.
local WINDOW_FIELDS = { 'w0', 'w1', 'w2', 'w3', 'w4', 'w5', 'w6', 'w7', 'w8', 'w9', 'reporters' }
-- Where WINDOW_FIELDS start in what `load` reads (load.lua: one HMGET of
-- FIELDS, then WINDOW_FIELDS, then `epoch`).
local WINDOW_AT = #FIELDS + 1

-- The window as text for the reply (see "Window").
local function window_text(s)
  -- Without a window (no rate policy, no quorum): nothing to build.
  if #s.buckets == 0 and #s.reporters == 0 then return '', '' end
  local parts = {}
  for _, b in ipairs(s.buckets) do
    parts[#parts + 1] = int(b.index) .. ':' .. int(b.calls) .. ':' .. int(b.failures) .. ':' .. int(b.slow)
  end
  local pods = {}
  for _, r in ipairs(s.reporters) do pods[#pods + 1] = r.pod .. '=' .. int(r.bucket) end
  return table.concat(parts, ','), table.concat(pods, ',')
end

-- model::transition: state `to`, generation + 1, leases cleared; the JSON message.
local function transition(s, c, to, reason)
  local from = s.state
  s.state = to
  s.generation = s.generation + 1
  s.probes = {}
  op(s, 'DEL', KEYS[2])
  return '{"agent_id":' .. cjson.encode(c.agent) .. ',"from":"' .. from .. '","to":"' .. to
    .. '","generation":' .. int(s.generation) .. ',"at_ms":' .. int(c.now)
    .. ',"reason":"' .. reason .. '","backoff_seconds":' .. seconds(s.backoff_ms)
    .. ',"open_until_ms":' .. int(s.open_until_ms) .. epoch_json(s) .. '}'
end

-- model::close: the clean closed state of a close, a reset and a force ending.
local function close(s, c)
  s.failure_count = 0
  s.half_open_successes = 0
  s.backoff_ms = c.base_backoff_ms
  s.open_until_ms = 0
  s.forced_until_ms = 0
  s.buckets = {}
  s.reporters = {}
end

-- model::refresh: drops lapsed leases, ends an expired force.
local function refresh(s, c)
  local kept = {}
  for _, p in ipairs(s.probes) do
    if p.deadline > c.now then kept[#kept + 1] = p end
  end
  if #kept < #s.probes then
    s.probes = kept
    op(s, 'ZREMRANGEBYSCORE', KEYS[2], '-inf', int(c.now))
  end
  local forced = s.state == 'forced_open' or s.state == 'forced_closed'
  if forced and s.forced_until_ms ~= 0 and c.now >= s.forced_until_ms then
    close(s, c)
    return transition(s, c, 'closed', 'force_expired')
  end
  return nil
end

-- model::escalate_backoff: min(floor(backoff x multiplier), max), in doubles.
local function escalate(backoff_ms, c)
  return math.min(math.floor(backoff_ms * c.multiplier), c.max_backoff_ms)
end

-- model::open_for: the escalated backoff, jittered, or a retry-after
-- (capped at max_backoff) if longer.
local function open(s, c, reason, retry_after_ms)
  s.backoff_ms = escalate(s.backoff_ms, c)
  local wait = jittered(c, s.backoff_ms, s.generation + 1)
  if retry_after_ms then wait = math.max(wait, math.min(retry_after_ms, c.max_backoff_ms)) end
  s.open_until_ms = wait + c.now
  s.half_open_successes = 0
  return transition(s, c, 'open', reason)
end

-- model::reject: the decision, as the acquire script returns it.
local function reject(s, retry_after_ms)
  s.total_rejections = s.total_rejections + 1
  return { 'rejected', s.state, retry_after_ms or -1 }
end

-- model::grant_probe: a lease for `id`, replacing any it held.
local function grant_probe(s, c, id)
  local lease = { id = id, deadline = c.now + c.recovery_timeout_ms }
  local probes = {}
  for _, p in ipairs(s.probes) do
    if p.id ~= id then probes[#probes + 1] = p end
  end
  local at = #probes + 1
  for i, p in ipairs(probes) do
    if lease.deadline < p.deadline or (lease.deadline == p.deadline and bytes_lt(id, p.id)) then
      at = i
      break
    end
  end
  table.insert(probes, at, lease)
  s.probes = probes
  op(s, 'ZADD', KEYS[2], int(lease.deadline), id)
  return { 'granted', s.generation, 1 }
end

-- model::stamp: the time of an outcome, and nothing else.
local function stamp(s, c, outcome)
  if outcome == 'success' then
    s.last_success_ms = c.now
  elseif outcome == 'failure' then
    s.last_failure_ms = c.now
  end
end

-- model::count: an outcome of the current generation.
local function count(s, c, outcome)
  if outcome == 'success' then
    s.failure_count = 0
    s.success_count = s.success_count + 1
  elseif outcome == 'failure' then
    s.failure_count = s.failure_count + 1
    s.success_count = 0
  end
  stamp(s, c, outcome)
end

-- The census value of a state (see "Census"): nil for closed.
local function census_entry(state, forced_until_ms)
  if state == nil or state == 'closed' then return nil end
  if (state == 'forced_open' or state == 'forced_closed') and (forced_until_ms or 0) ~= 0 then
    return state .. ' ' .. int(forced_until_ms)
  end
  return state
end

-- Keeps the census field of the agent right (see "Census"): written when
-- the state differs from the one loaded; with `c.check_census` (the
-- snapshot script) also checked against the hash and repaired.
local function save_census(s, c)
  local entry = census_entry(s.state, s.forced_until_ms)
  -- A new agent, or a repaired one (its loaded fields are not trusted).
  local known = s.exists and s.saved.state ~= nil
  local unchanged
  if known then
    unchanged = entry == census_entry(s.saved.state, s.saved.forced_until_ms)
  else
    unchanged = entry == nil and not s.exists
  end
  if unchanged and not c.check_census then return end
  if c.cluster then
    -- The client writes it. A check cannot read the field from here: it
    -- sets the field of an agent not closed (the same value: harmless).
    if not unchanged then
      c.census = entry or '-'
    elseif entry then
      c.census = entry
    end
    return
  end
  if unchanged and (redis.call('HMGET', KEYS[5], c.agent)[1] or nil) == entry then return end
  if entry then
    redis.call('HSET', KEYS[5], c.agent, entry)
  else
    redis.call('HDEL', KEYS[5], c.agent)
  end
end

-- The stored text of WINDOW_FIELDS[i] as `load` read it ('' when absent,
-- or for a new hash); '?' after `load_for_repair`, so that `save` rewrites
-- or deletes every window field.
local function loaded_window(s, i)
  if s.repaired then return '?' end
  return s.loaded and s.loaded[WINDOW_AT + i - 1] or ''
end

-- Writes what changed, then publishes the transition `tr` (JSON), if any.
local function save(s, c, tr)
  if not s.exists then
    if c.cluster then c.created = true else redis.call('SADD', KEYS[3], c.agent) end
  end
  if tr and not c.cluster then
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', int(c.max_len), '*', 'msg', tr)
  end
  for _, o in ipairs(s.ops) do redis.call(unpack(o)) end
  local changed = {}
  for _, f in ipairs(FIELDS) do
    if not s.exists or s[f] ~= s.saved[f] then
      changed[#changed + 1] = f
      changed[#changed + 1] = (f == 'state') and s.state or int(s[f])
    end
  end
  if not s.exists or s.write_epoch then
    changed[#changed + 1] = 'epoch'
    changed[#changed + 1] = int(s.epoch)
  end
  local _, reporters = window_text(s)
  local stored = { reporters = reporters }
  for _, b in ipairs(s.buckets) do
    stored['w' .. int(b.index % 10)] = int(b.index) .. ':' .. int(b.calls) .. ':'
      .. int(b.failures) .. ':' .. int(b.slow)
  end
  local dropped = {}
  for i, f in ipairs(WINDOW_FIELDS) do
    local text = stored[f] or ''
    if text ~= loaded_window(s, i) then
      if text == '' then
        dropped[#dropped + 1] = f
      else
        changed[#changed + 1] = f
        changed[#changed + 1] = text
      end
    end
  end
  if #dropped > 0 then redis.call('HDEL', KEYS[1], unpack(dropped)) end
  if #changed > 0 then
    redis.call('HSET', KEYS[1], unpack(changed))
    if s.state == 'closed' and c.idle_ttl_ms > 0 then
      redis.call('PEXPIRE', KEYS[1], int(c.idle_ttl_ms))
    else
      redis.call('PERSIST', KEYS[1])
    end
  end
  save_census(s, c)
  if tr then
    redis.call('PUBLISH', c.channel, tr)
  elseif (s.saved and s.saved.failure_count or 0) == 0 ~= (s.failure_count == 0) then
    redis.call('PUBLISH', c.counts_channel, '{"agent_id":' .. cjson.encode(c.agent)
      .. ',"generation":' .. int(s.generation) .. ',"failure_count":' .. int(s.failure_count) .. epoch_json(s) .. '}')
  end
end

-- The common return value (see the header), then `...`.
local function reply(s, c, tr, ...)
  local probes = {}
  for _, p in ipairs(s.probes) do
    probes[#probes + 1] = p.id
    probes[#probes + 1] = p.deadline
  end
  local window, reporters = window_text(s)
  -- One constructor, `...` last: sized once, not grown element by element.
  local r = {
    c.now, tr or '', s.state, s.failure_count, s.success_count, s.total_rejections,
    s.last_failure_ms, s.last_success_ms, s.backoff_ms, s.open_until_ms,
    s.half_open_successes, s.generation, s.forced_until_ms, probes, s.epoch,
    window, reporters, c.settings or {}, ...
  }
  if c.cluster then
    r[#r + 1] = c.created and 1 or 0
    r[#r + 1] = c.census or ''
  end
  return r
end

