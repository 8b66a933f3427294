--[[
load.lua: reading and checking an agent's stored state, and repairing it.

src/store/redis/scripts.rs puts it after epoch.lua and lib.lua (whose helpers it
uses: stored_epoch, FIELDS, STATES, raise, to_uint, fresh, save) and before
each operation's file.

Corrupt data: a hash or probes key edited by hand, or written by something
else. Every script but reset and force refuses it with `corrupt`, before any
write but the census field that says so (see `corrupt` below): `ERR fleet-breaker: corrupt data: {"key","field","value","expected"}`
(JSON, the first corrupt field in FIELDS order; "value" absent when the field
is missing), which the client reads into StoreError::Corrupt. reset and force
repair it: `load_for_repair`, then `save_repaired`, rewrite every field.
]]

local EXPECTED_STATE = 'closed, open, half_open, forced_open or forced_closed'
local EXPECTED_UINT = 'an integer from 0 to 2^53 - 1'
local EXPECTED_U32 = 'an integer from 0 to 2^32 - 1'

-- A stored value for an error: its first 64 bytes, each byte outside
-- printable ASCII as \xNN (so the JSON is valid UTF-8); nil stays nil.
local function printable(value)
  if value == nil then return nil end
  return (string.gsub(string.sub(tostring(value), 1, 64), '[^\32-\126]', function(ch)
    return string.format('\\x%02x', string.byte(ch))
  end))
end

-- The type of a key that is not of the type expected, for an error; it
-- still reads when an ACL refuses TYPE (the README's ACL does).
local function key_type(key)
  local t = redis.pcall('TYPE', key)
  return type(t) == 'table' and t.ok or 'not the type expected'
end

-- Ends the script with `ERR fleet-breaker: corrupt data: ` and a JSON object
-- {"key", "field", "value", "expected"} ("value" absent when the field is
-- missing), which the client reads into StoreError::Corrupt. On one Redis
-- it first marks the agent `corrupt` in the census (lib.lua, "Census"): the
-- one write of a script that refuses corrupt data, so the fleet's counts
-- show it (a repair by reset or force rewrites the field).
local function corrupt(key, field, value, expected)
  if #KEYS == 6 then redis.call('HSET', KEYS[5], ARGV[1], 'corrupt') end
  raise('corrupt data', cjson.encode({
    key = key, field = field, value = printable(value), expected = expected,
  }))
end

-- Field `f` parsed from its stored text; nil and what was expected when
-- the text is corrupt (or false: missing).
local function parse_field(f, text)
  if f == 'state' then
    if STATES[text] then return text end
    return nil, EXPECTED_STATE
  end
  local n = to_uint(text)
  if n == nil then return nil, EXPECTED_UINT end
  if f == 'half_open_successes' and n > MAX_U32 then return nil, EXPECTED_U32 end
  return n
end

-- What `read_hash` reads, in one HMGET (HMGET, not HGET: the README's ACL
-- line allows what the scripts use): FIELDS, WINDOW_FIELDS, then `epoch`.
-- Top-level code runs when Redis loads the function library, where
-- `ipairs` and `unpack` do not exist yet: plain loops only.
local FIELDS_AND_WINDOW = {}
for i = 1, #FIELDS do FIELDS_AND_WINDOW[i] = FIELDS[i] end
for i = 1, #WINDOW_FIELDS do FIELDS_AND_WINDOW[WINDOW_AT + i - 1] = WINDOW_FIELDS[i] end
FIELDS_AND_WINDOW[#FIELDS_AND_WINDOW + 1] = 'epoch'
local EPOCH_AT = #FIELDS_AND_WINDOW
local EXPECTED_BUCKET = 'index:calls:failures:slow, the index ending in the field\'s digit'
local EXPECTED_REPORTERS = 'pod=bucket, comma-separated'

-- The window's buckets and reporters from the stored values of
-- WINDOW_FIELDS (`raw[first]` on; false: absent), buckets ordered by index;
-- nil and the field that is corrupt, its value and what was expected.
local function parse_window(raw, first)
  local buckets, pods = {}, {}
  for k = 0, 9 do
    local text = raw[first + k]
    if text then
      local i, calls, failures, slow = string.match(text, '^(%d+):(%d+):(%d+):(%d+)$')
      local b = { index = to_uint(i), calls = to_uint(calls), failures = to_uint(failures), slow = to_uint(slow) }
      if not (b.index and b.calls and b.failures and b.slow) or b.index % 10 ~= k then
        return nil, 'w' .. k, text, EXPECTED_BUCKET
      end
      buckets[#buckets + 1] = b
    end
  end
  if #buckets > 1 then table.sort(buckets, function(a, b) return a.index < b.index end) end
  local reporters = raw[first + 10]
  for item in string.gmatch(reporters or '', '[^,]+') do
    local pod, bucket = string.match(item, '^([%w%._@/%-]+)=(%d+)$')
    if pod == nil or to_uint(bucket) == nil then
      return nil, 'reporters', reporters, EXPECTED_REPORTERS
    end
    pods[#pods + 1] = { pod = pod, bucket = to_uint(bucket) }
  end
  return buckets, pods
end

-- The stored fields, as HMGET gives them (false: missing); nil when the
-- hash is absent; false and the key's type when the key is not a hash.
local function read_hash()
  local raw = redis.pcall('HMGET', KEYS[1], unpack(FIELDS_AND_WINDOW))
  if raw.err then return false, key_type(KEYS[1]) end
  if not (raw[1] or raw[2] or raw[10]) and redis.call('EXISTS', KEYS[1]) == 0 then
    return nil
  end
  return raw
end

-- Reads the leases, already ordered by (deadline, id) as ZRANGE gives them.
local function load_probes(s)
  local raw = redis.pcall('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  if raw.err then corrupt(KEYS[2], 'probes', key_type(KEYS[2]), 'a sorted set') end
  for i = 1, #raw, 2 do
    local deadline = to_uint(raw[i + 1])
    if deadline == nil then
      corrupt(KEYS[2], 'probes', raw[i + 1], 'lease deadlines, ' .. EXPECTED_UINT)
    end
    s.probes[#s.probes + 1] = { id = raw[i], deadline = deadline }
  end
end

-- The agent's snapshot, checked field by field (the first corrupt one ends
-- the script); nil when the hash is absent.
local function load()
  local raw, kind = read_hash()
  if raw == nil then return nil end
  if raw == false then corrupt(KEYS[1], 'type', kind, 'a hash') end
  local s = { exists = true, probes = {}, ops = {}, saved = {} }
  for i, f in ipairs(FIELDS) do
    local value, expected = parse_field(f, raw[i])
    if value == nil then corrupt(KEYS[1], f, raw[i] or nil, expected) end
    s[f] = value
    s.saved[f] = value
  end
  local buckets, pods, text, expected = parse_window(raw, WINDOW_AT)
  if buckets == nil then corrupt(KEYS[1], pods, text, expected) end
  s.buckets, s.reporters = buckets, pods
  s.loaded = raw
  if s.state == 'half_open' then load_probes(s) end
  local epoch, text = stored_epoch(raw[EPOCH_AT])
  if epoch == nil then corrupt(KEYS[1], 'epoch', text, EXPECTED_UINT) end
  s.epoch = epoch
  return s
end

-- For reset and force, which repair what `load` refuses: the snapshot with
-- every corrupt field at its fresh value (state closed, counters 0, backoff
-- base), and an unreadable generation at the store time, above any
-- generation a pod may have cached (its cache moves forward only); nil when
-- the hash is absent. The probes are not read: the repair's transition
-- deletes them. `saved` is empty, so `save` rewrites every field, and a key
-- that is not a hash is deleted first (`save_repaired`).
local function load_for_repair(c)
  local raw = read_hash()
  if raw == nil then return nil end
  local s = fresh(c)
  s.exists = true
  s.saved = {}
  if raw == false then
    s.wrong_type = true
    raw = {}
  end
  for i, f in ipairs(FIELDS) do
    local value = parse_field(f, raw[i])
    if value ~= nil then
      s[f] = value
    elseif f == 'generation' then
      s.generation = c.now
    end
  end
  -- An unreadable window is dropped (save deletes the fields).
  local buckets, pods = parse_window(raw, WINDOW_AT)
  if buckets ~= nil then s.buckets, s.reporters = buckets, pods end
  s.repaired = true
  -- An unreadable epoch (or a key that was not a hash) starts a new
  -- history: `fresh` drew a new epoch, and `save` writes it.
  local epoch = (not s.wrong_type) and stored_epoch(raw[EPOCH_AT]) or nil
  if epoch == nil then
    s.write_epoch = true
  else
    s.epoch = epoch
  end
  return s
end

-- `save` after `load_for_repair`.
local function save_repaired(s, c, tr)
  if s.wrong_type then redis.call('DEL', KEYS[1]) end
  save(s, c, tr)
end

-- The agent's settings: each field of the config key, checked against its
-- range as AgentSettings::check_ranges checks it, a corrupt one refused like
-- a corrupt state field (configure.lua replaces them all).
local SETTINGS = {
  -- name, config field, min, max, whole number
  { 'failure_threshold', 'failure_threshold', 1, MAX_U32, true },
  { 'half_open_max_calls', 'half_open_max_calls', 1, MAX_U32, true },
  { 'base_backoff_ms', 'base_backoff_ms', 1, 2592000000, true },
  { 'backoff_multiplier', 'multiplier', 1, 1000, false },
  { 'max_backoff_ms', 'max_backoff_ms', 1, 2592000000, true },
  { 'recovery_timeout_ms', 'recovery_timeout_ms', 1, 2592000000, true },
  { 'failure_rate_threshold', 'failure_rate', 0, 1, false },
  { 'slow_call_duration_ms', 'slow_call_ms', 0, 2592000000, true },
  { 'slow_call_rate_threshold', 'slow_call_rate', 0, 1, false },
  { 'window_ms', 'window_ms', 1000, 3600000, true },
  { 'minimum_calls', 'minimum_calls', 1, MAX_U32, true },
  { 'min_reporting_pods', 'min_reporting_pods', 1, 64, true },
  { 'backoff_jitter', 'jitter', 0, 0.5, false },
}

-- The value of setting `spec` from its text, or nil when out of range.
local function setting_value(spec, text)
  local n = tonumber(text)
  if n == nil or n ~= n or n < spec[3] or n > spec[4] then return nil end
  if spec[5] and n % 1 ~= 0 then return nil end
  if spec[1] == 'window_ms' and n % 10 ~= 0 then return nil end
  return n
end

local function setting_spec(name)
  for _, spec in ipairs(SETTINGS) do
    if spec[1] == name then return spec end
  end
  return nil
end

-- Reads the agent's settings into `c` (overriding the process's values)
-- and `c.settings` (name, text pairs in SETTINGS order, for the reply).
local function read_settings(c)
  local raw = redis.pcall('HGETALL', c.config_key)
  if raw.err then corrupt(c.config_key, 'type', key_type(c.config_key), 'a hash') end
  -- Most agents have none: `c.settings` stays false (the reply's `{}`).
  if #raw == 0 then return end
  local stored = {}
  for i = 1, #raw, 2 do
    if setting_spec(raw[i]) == nil then
      corrupt(c.config_key, raw[i], raw[i + 1], 'no such setting')
    end
    stored[raw[i]] = raw[i + 1]
  end
  c.settings = {}
  for _, spec in ipairs(SETTINGS) do
    local text = stored[spec[1]]
    if text then
      local n = setting_value(spec, text)
      if n == nil then
        corrupt(c.config_key, spec[1], text, 'a number from ' .. spec[3] .. ' to ' .. spec[4])
      end
      c[spec[2]] = n
      c.settings[#c.settings + 1] = spec[1]
      c.settings[#c.settings + 1] = text
    end
  end
end

-- `setup` with the agent's settings applied: how every operation begins.
local function begin(argc)
  local c = setup(argc)
  read_settings(c)
  return c
end
