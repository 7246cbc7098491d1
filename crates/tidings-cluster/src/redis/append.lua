-- Appends one publish to the cluster's log, atomically (Redis runs a script
-- alone), with the single-node hub's rules for publisher ids.
--
-- KEYS[1] the stream (the log; entry ids are <seq>-0)
-- KEYS[2] the sorted set of publisher ids (member id, score seq)
-- KEYS[3] the sequence counter
-- KEYS[4] the hash of retained updates (field topic, value
--         '<seq> <time> <payload>')
-- ARGV[1] MAXLEN for the stream ('' for none), ARGV[2] the time (Unix ms),
-- ARGV[3] the number of updates n, then for each update:
--   has_id ('1' or '0'), id, payload (the update's canonical encoding),
--   retain ('0' no, '1' keep, '2' clear), the number of topics t listed
--   (0 unless retain is set), then those t topics
--
-- Returns {'ok', seq1, dup1, seq2, dup2, ...} with dup '1' for a retry that
-- was not appended again, or {'conflict', id} when an id is already used by
-- a different update: then nothing was written.
--
-- Sequence numbers are formatted with '%d': Lua numbers are doubles, whose
-- default formatting would turn 16 digits into 1.7637e+15 (they are exact
-- below 2^53, centuries of microseconds away).
local log, ids, counter, retained = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local maxlen, time_ms, n = ARGV[1], ARGV[2], tonumber(ARGV[3])

-- The updates, read once from their variable-length argument groups.
local updates = {}
local cursor = 4
for i = 1, n do
  local u = {has_id = ARGV[cursor], id = ARGV[cursor + 1], payload = ARGV[cursor + 2],
             retain = ARGV[cursor + 3], topics = {}}
  local t = tonumber(ARGV[cursor + 4])
  for k = 1, t do
    u.topics[k] = ARGV[cursor + 4 + k]
  end
  cursor = cursor + 5 + t
  updates[i] = u
end

local function stored_payload(seq)
  local entries = redis.call('XRANGE', log, seq .. '-0', seq .. '-0')
  if #entries == 0 then
    return nil
  end
  local fields = entries[1][2]
  for f = 1, #fields, 2 do
    if fields[f] == 'u' then
      return fields[f + 1]
    end
  end
  return nil
end

-- Pass 1, reads only: a conflict must refuse the whole publish before
-- anything is written (Redis does not roll a script back).
local outcome = {}
local fresh = {}
for i = 1, n do
  if updates[i].has_id == '1' then
    local id, payload = updates[i].id, updates[i].payload
    local earlier = fresh[id]
    if earlier then
      if earlier.payload ~= payload then
        return {'conflict', id}
      end
      outcome[i] = {'same', earlier.index}
    else
      local score = redis.call('ZSCORE', ids, id)
      if score then
        local seq = string.format('%d', tonumber(score))
        local old = stored_payload(seq)
        if old ~= nil then
          if old ~= payload then
            return {'conflict', id}
          end
          outcome[i] = {'old', seq}
        end
      end
      if outcome[i] == nil then
        fresh[id] = {payload = payload, index = i}
      end
    end
  end
end

-- The counter starts from the clock (microseconds), like a single hub's
-- history, so that ids keep growing even if Redis loses its data; never
-- below what the stream already holds.
if redis.call('EXISTS', counter) == 0 then
  local now = redis.call('TIME')
  local start = tonumber(now[1]) * 1000000 + tonumber(now[2])
  local last = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)
  if #last > 0 then
    local last_seq = tonumber(string.match(last[1][1], '^(%d+)'))
    if last_seq > start then
      start = last_seq
    end
  end
  redis.call('SET', counter, string.format('%d', start))
end

-- Pass 2: append the new updates in order; a retained one becomes the
-- retained update of its topics (or clears theirs) in the same step.
for i = 1, n do
  if outcome[i] == nil then
    local u = updates[i]
    local seq = string.format('%d', redis.call('INCR', counter))
    if maxlen == '' then
      redis.call('XADD', log, seq .. '-0', 'u', u.payload, 't', time_ms)
    else
      redis.call('XADD', log, 'MAXLEN', '~', maxlen, seq .. '-0', 'u', u.payload, 't', time_ms)
    end
    if u.has_id == '1' then
      redis.call('ZADD', ids, seq, u.id)
    end
    for _, topic in ipairs(u.topics) do
      if u.retain == '1' then
        redis.call('HSET', retained, topic, seq .. ' ' .. time_ms .. ' ' .. u.payload)
      elseif u.retain == '2' then
        redis.call('HDEL', retained, topic)
      end
    end
    outcome[i] = {'new', seq}
  end
end

local reply = {'ok'}
for i = 1, n do
  local o = outcome[i]
  if o[1] == 'same' then
    table.insert(reply, outcome[o[2]][2])
    table.insert(reply, '1')
  elseif o[1] == 'old' then
    table.insert(reply, o[2])
    table.insert(reply, '1')
  else
    table.insert(reply, o[2])
    table.insert(reply, '0')
  end
end

-- Forget the ids of entries the stream no longer holds, so that the set
-- stays as small as the stream.
local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
if #first > 0 then
  local first_seq = string.match(first[1][1], '^(%d+)')
  redis.call('ZREMRANGEBYSCORE', ids, '-inf', '(' .. first_seq)
end
return reply
