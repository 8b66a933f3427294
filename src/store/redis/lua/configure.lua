--[[
configure.lua: replaces the settings stored for an agent (model::configure).

KEYS[1..6], ARGV[1..12] and the policies (last): see lib.lua. Between them:
  ARGV[13], ARGV[14], ...: name, value pairs of the new settings (none:
  clear them). Names and ranges: SETTINGS in load.lua (AgentSettings).

Every pair is checked before anything is written; a bad one ends the script
with `invalid argument`. The config key is replaced whole (it is the way to
repair one that other scripts refuse as corrupt). Not a transition: the
state and the generation stay; the next operation runs under the settings.
Creates the agent (like acquire) so settings can be given before any call.

Return value: the common array of lib.lua, nothing more.
]]

return guard(function()
  if #ARGV < 13 or #ARGV % 2 ~= 1 then
    raise('invalid argument', 'expected 12 arguments, name-value pairs and the policies, got ' .. #ARGV)
  end
  local c = setup(#ARGV)
  local pairs_ = {}
  for i = 13, #ARGV - 1, 2 do
    local spec = setting_spec(ARGV[i])
    if spec == nil then
      raise('invalid argument', 'ARGV[' .. i .. '] (setting) is ' .. show(ARGV[i]) .. ', no such setting')
    end
    if setting_value(spec, ARGV[i + 1]) == nil then
      raise('invalid argument', spec[1] .. ' is ' .. show(ARGV[i + 1]) .. ', expected a number from '
        .. spec[3] .. ' to ' .. spec[4])
    end
    pairs_[#pairs_ + 1] = ARGV[i]
    pairs_[#pairs_ + 1] = ARGV[i + 1]
  end
  -- A new agent starts from the process's config, as model::configure
  -- applies the settings to a fresh snapshot.
  local s = load() or fresh(c)
  redis.call('DEL', c.config_key)
  if #pairs_ > 0 then redis.call('HSET', c.config_key, unpack(pairs_)) end
  read_settings(c)
  local tr = refresh(s, c)
  save(s, c, tr)
  return reply(s, c, tr)
end)
