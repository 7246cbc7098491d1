-- Appends one publish to the cluster's log, atomically (Redis runs a script
-- alone), with the single-node hub's rules for publisher ids.
--
-- KEYS[1] the stream (the log; entry ids are <seq>-0)
-- KEYS[2] the sorted set of publisher ids (member id, score seq)
-- KEYS[3] the sequence counter
-- ARGV[1] MAXLEN for the stream ('' for none), ARGV[2] the time (Unix ms),
-- ARGV[3] the number of updates n, then n triples:
--   has_id ('1' or '0'), id, payload (the update's canonical encoding)
--
-- Returns {'ok', seq1, dup1, seq2, dup2, ...} with dup '1' for a retry that
-- was not appended again, or {'conflict', id} when an id is already used by
-- a different update: then nothing was written.
--
-- Sequence numbers are formatted with '%d': Lua numbers are doubles, whose
-- default formatting would turn 16 digits into 1.7637e+15 (they are exact
-- below 2^53, centuries of microseconds away).
local log, ids, counter = KEYS[1], KEYS[2], KEYS[3]
local maxlen, time_ms, n = ARGV[1], ARGV[2], tonumber(ARGV[3])

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
  local at = 3 + (i - 1) * 3
  if ARGV[at + 1] == '1' then
    local id, payload = ARGV[at + 2], ARGV[at + 3]
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

-- Pass 2: append the new updates in order.
for i = 1, n do
  if outcome[i] == nil then
    local at = 3 + (i - 1) * 3
    local seq = string.format('%d', redis.call('INCR', counter))
    if maxlen == '' then
      redis.call('XADD', log, seq .. '-0', 'u', ARGV[at + 3], 't', time_ms)
    else
      redis.call('XADD', log, 'MAXLEN', '~', maxlen, seq .. '-0', 'u', ARGV[at + 3], 't', time_ms)
    end
    if ARGV[at + 1] == '1' then
      redis.call('ZADD', ids, seq, ARGV[at + 2])
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
