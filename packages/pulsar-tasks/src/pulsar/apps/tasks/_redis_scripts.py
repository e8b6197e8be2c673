"""The Lua scripts of the Redis backend: every state change is one script, so it is atomic
(see :mod:`._redis` for the keys). ``LIB`` is prepended to the scripts that end or recover
tasks: ``finalize`` (TTL, overlap key, done and reply messages) and ``recover`` (a task whose
worker died: queued again, or FAILURE 'lost').
"""

from __future__ import annotations

import hashlib

__all__ = ["SCRIPTS", "SHAS"]

_LIB = """
local p = ARGV[1]
local function finalize(k, id, status, now, ttl)
  redis.call('ZREM', p..':leases', id)
  local ov = redis.call('HGET', k, 'overlap_key')
  if ov and ov ~= '' and redis.call('GET', p..':ov:'..ov) == id then
    redis.call('DEL', p..':ov:'..ov)
  end
  if tonumber(ttl) > 0 then
    -- to the millisecond, and in the record: a reply or done message read after the TTL is
    -- known to be gone (as on SQLite)
    redis.call('HSET', k, 'purge_at', tostring(now + tonumber(ttl)))
    redis.call('PEXPIRE', k, math.ceil(tonumber(ttl) * 1000))
  end
  -- the final record itself (a waiter needs no read after the message), on the task's channel
  -- and on the reply channel of the client that queued it ("<id> <record>"); read and encoded
  -- only when someone listens (a waiter reads the record after subscribing: nothing is missed)
  local done = p..':done:'..id
  local rt = redis.call('HGET', k, 'reply_to')
  if rt == '' then rt = false end
  local subs
  if rt then subs = redis.call('PUBSUB', 'NUMSUB', done, rt)
  else subs = redis.call('PUBSUB', 'NUMSUB', done) end
  if subs[2] == 0 and (subs[4] or 0) == 0 then return end
  local flat = redis.call('HGETALL', k)
  local row = {}
  for j = 1, #flat, 2 do row[flat[j]] = flat[j + 1] end
  local msg = cjson.encode(row)
  if subs[2] > 0 then redis.call('PUBLISH', done, msg) end
  if (subs[4] or 0) > 0 then redis.call('PUBLISH', rt, id..' '..msg) end
end
-- a STARTED task whose worker died: queued again (and its queue woken), or FAILURE 'lost'
-- once out of retries
local function recover(id, now, ttl)
  local k = p..':t:'..id
  redis.call('ZREM', p..':leases', id)
  if redis.call('HGET', k, 'status') ~= 'STARTED' then return end
  local att = tonumber(redis.call('HGET', k, 'attempts') or '0') or 0
  local mr = tonumber(redis.call('HGET', k, 'max_retries') or '0') or 0
  if att > mr then
    redis.call('HSET', k, 'status', 'FAILURE', 'time_finished', now, 'token', '',
      'lease_expires', '', 'error',
      'lost: the worker running it died or stopped answering ('..att..' attempts)')
    finalize(k, id, 'FAILURE', now, ttl)
  else
    local q = redis.call('HGET', k, 'queue') or 'default'
    redis.call('HSET', k, 'status', 'QUEUED', 'token', '', 'worker', '', 'lease_expires', '',
      'eta', now)
    redis.call('ZADD', p..':q:'..q, now, id)
    redis.call('RPUSH', p..':wake:'..q, '1')
    redis.call('LTRIM', p..':wake:'..q, -64, -1)
  end
end
"""

# ARGV: prefix, then a JSON array with per task [id, unique, queue, eta, time_queued,
# overlap_key, the record as an object of strings] (one argument for the whole batch: packing
# seven per task cost more in redis-py than the rest of the call); returns per task 1 (stored),
# 0 (unique and exists), -1 (not unique and exists) or the id of the task holding its overlap
# key
_ENQUEUE = """
local p = ARGV[1]
local out = {}
local woken = {}
for _, item in ipairs(cjson.decode(ARGV[2])) do
  local id, unique, queue, eta, tq, ov = item[1], item[2], item[3], item[4], item[5], item[6]
  local k = p..':t:'..id
  local res = 1
  if redis.call('EXISTS', k) == 1 then
    if unique == '1' then res = 0 else res = -1 end
  end
  if res == 1 and ov ~= '' then
    local other = redis.call('GET', p..':ov:'..ov)
    if other then
      local st = redis.call('HGET', p..':t:'..other, 'status')
      if st == 'QUEUED' or st == 'RETRY' or st == 'STARTED' then res = other end
    end
    if res == 1 then redis.call('SET', p..':ov:'..ov, id) end
  end
  if res == 1 then
    local flat = {}
    for f, v in pairs(item[7]) do
      table.insert(flat, f); table.insert(flat, v)
    end
    redis.call('DEL', k)
    redis.call('HSET', k, unpack(flat))
    redis.call('ZADD', p..':q:'..queue, eta, id)
    redis.call('ZADD', p..':all', tq, id)
    woken[queue] = true
  end
  table.insert(out, res)
end
for queue in pairs(woken) do  -- one wake-up per queue and batch
  redis.call('RPUSH', p..':wake:'..queue, '1')
  redis.call('LTRIM', p..':wake:'..queue, -64, -1)
end
return out
"""

# ARGV: prefix, id... -> per id the record as a JSON object ('{}' when there is none)
_GET = """
local p = ARGV[1]
local out = {}
for i = 2, #ARGV do
  local flat = redis.call('HGETALL', p..':t:'..ARGV[i])
  local row = {}
  for j = 1, #flat, 2 do row[flat[j]] = flat[j + 1] end
  table.insert(out, cjson.encode(row))
end
return out
"""

# ARGV: prefix, now ('' for the server's clock), lease, limit, worker, token_base, ttl, queue...
_CLAIM = (
    _LIB
    + """
local now = tonumber(ARGV[2])
if not now then
  -- queued behind a blocking wait: the time it runs, not the time it was sent
  if redis.replicate_commands then redis.replicate_commands() end
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local lease = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local ttl = ARGV[7]
local lost = redis.call('ZRANGEBYSCORE', p..':leases', '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(lost) do recover(id, now, ttl) end
local out = {}
local nxt = nil
for i = 8, #ARGV do
  local qk = p..':q:'..ARGV[i]
  if #out < limit then
    local ids = redis.call('ZRANGEBYSCORE', qk, '-inf', now, 'LIMIT', 0, limit - #out)
    for _, id in ipairs(ids) do
      redis.call('ZREM', qk, id)
      local k = p..':t:'..id
      local st = redis.call('HGET', k, 'status')
      if st == 'QUEUED' or st == 'RETRY' then
        local exp = tonumber(redis.call('HGET', k, 'expires') or '')
        if exp and exp < now then
          redis.call('HSET', k, 'status', 'REVOKED', 'error', 'expired', 'time_finished', now)
          finalize(k, id, 'REVOKED', now, ttl)
        else
          local att = redis.call('HINCRBY', k, 'attempts', 1)
          redis.call('HSET', k, 'status', 'STARTED', 'worker', ARGV[5],
            'token', ARGV[6]..':'..att, 'time_started', now, 'lease_expires', now + lease,
            'revoke', '0')
          redis.call('ZADD', p..':leases', now + lease, id)
          -- one JSON string per task: decoded in C, not as 40 RESP items in Python
          local flat = redis.call('HGETALL', k)
          local row = {}
          for j = 1, #flat, 2 do row[flat[j]] = flat[j + 1] end
          table.insert(out, id)
          table.insert(out, cjson.encode(row))
        end
      end
    end
  end
  local first = redis.call('ZRANGE', qk, 0, 0, 'WITHSCORES')
  if first[2] and (nxt == nil or tonumber(first[2]) < nxt) then nxt = tonumber(first[2]) end
end
return {out, tostring(nxt or '')}
"""
)

# ARGV: prefix, now, ttl, worker -> how many of its tasks were recovered
_RELEASE_WORKER = (
    _LIB
    + """
local now = tonumber(ARGV[2])
local n = 0
for _, id in ipairs(redis.call('ZRANGE', p..':leases', 0, -1)) do
  if redis.call('HGET', p..':t:'..id, 'worker') == ARGV[4] then
    recover(id, now, ARGV[3])
    n = n + 1
  end
end
return n
"""
)

# ARGV: prefix, now, lease, id, token, id, token, ...
_RENEW = """
local p = ARGV[1]
local now = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local k = p..':t:'..id
  local v = redis.call('HMGET', k, 'token', 'status', 'revoke')
  if v[1] ~= token or v[2] ~= 'STARTED' then
    table.insert(out, id); table.insert(out, 'lost')
  else
    if v[3] == '1' then table.insert(out, id); table.insert(out, 'revoked') end
    redis.call('HSET', k, 'lease_expires', now + lease)
    redis.call('ZADD', p..':leases', now + lease, id)
  end
end
return out
"""

# ARGV: prefix, now, ttl, a JSON array of [id, token, status, result, error, traceback]
_COMPLETE = (
    _LIB
    + """
local now = tonumber(ARGV[2])
local out = {}
for _, item in ipairs(cjson.decode(ARGV[4])) do
  local id = item[1]
  local k = p..':t:'..id
  local v = redis.call('HMGET', k, 'token', 'status')
  if v[1] ~= item[2] or v[2] ~= 'STARTED' then
    table.insert(out, 0)
  else
    redis.call('HSET', k, 'status', item[3], 'result_json', item[4], 'error', item[5],
      'traceback', item[6], 'time_finished', now, 'token', '', 'lease_expires', '')
    finalize(k, id, item[3], now, ARGV[3])
    table.insert(out, 1)
  end
end
return out
"""
)

# ARGV: prefix, id, token, eta, error, traceback
_RETRY = """
local p = ARGV[1]
local id = ARGV[2]
local k = p..':t:'..id
local v = redis.call('HMGET', k, 'token', 'status', 'queue')
if v[1] ~= ARGV[3] or v[2] ~= 'STARTED' then return 0 end
redis.call('HSET', k, 'status', 'RETRY', 'eta', ARGV[4], 'error', ARGV[5], 'traceback', ARGV[6],
  'token', '', 'lease_expires', '')
redis.call('ZREM', p..':leases', id)
redis.call('ZADD', p..':q:'..v[3], ARGV[4], id)
redis.call('RPUSH', p..':wake:'..v[3], '1')
redis.call('LTRIM', p..':wake:'..v[3], -64, -1)
return 1
"""

# ARGV: prefix, id, token, now
_RELEASE = """
local p = ARGV[1]
local id = ARGV[2]
local k = p..':t:'..id
local v = redis.call('HMGET', k, 'token', 'status', 'queue', 'attempts')
if v[1] ~= ARGV[3] or v[2] ~= 'STARTED' then return 0 end
local att = math.max(0, (tonumber(v[4]) or 1) - 1)
redis.call('HSET', k, 'status', 'QUEUED', 'token', '', 'worker', '', 'lease_expires', '',
  'eta', ARGV[4], 'attempts', att)
redis.call('ZREM', p..':leases', id)
redis.call('ZADD', p..':q:'..v[3], ARGV[4], id)
redis.call('RPUSH', p..':wake:'..v[3], '1')
redis.call('LTRIM', p..':wake:'..v[3], -64, -1)
return 1
"""

# ARGV: prefix, id, now, ttl
_REVOKE = (
    _LIB
    + """
local id = ARGV[2]
local k = p..':t:'..id
local v = redis.call('HMGET', k, 'status', 'queue', 'name')
if not v[1] then return false end
if v[1] == 'QUEUED' or v[1] == 'RETRY' then
  -- the TTL the workers of this job use (published with the job), else this client's
  local ttl = ARGV[4]
  local meta = v[3] and redis.call('HGET', p..':jobs', v[3])
  if meta then
    local ok, m = pcall(cjson.decode, meta)
    if ok and type(m) == 'table' and type(m['result_ttl']) == 'number' then
      ttl = tostring(m['result_ttl'])
    end
  end
  redis.call('ZREM', p..':q:'..v[2], id)
  redis.call('HSET', k, 'status', 'REVOKED', 'error', 'revoked', 'time_finished', ARGV[3],
    'token', '')
  finalize(k, id, 'REVOKED', tonumber(ARGV[3]), ttl)
  return 'REVOKED'
end
if v[1] == 'STARTED' then redis.call('HSET', k, 'revoke', '1') end
return v[1]
"""
)


# ARGV: prefix, start, stop -> {ids seen, ids gone, status, count, ...}; records gone
# (expired results) are dropped from the index
_COUNTS = """
local p = ARGV[1]
local ids = redis.call('ZRANGE', p..':all', ARGV[2], ARGV[3])
local tally = {}
local gone = {}
for _, id in ipairs(ids) do
  local st = redis.call('HGET', p..':t:'..id, 'status')
  if st then tally[st] = (tally[st] or 0) + 1 else table.insert(gone, id) end
end
for i = 1, #gone, 1000 do
  redis.call('ZREM', p..':all', unpack(gone, i, math.min(i + 999, #gone)))
end
local out = {#ids, #gone}
for st, n in pairs(tally) do table.insert(out, st); table.insert(out, n) end
return out
"""


#: name -> source, registered by each RedisBackend client
SCRIPTS = {
    "enqueue": _ENQUEUE,
    "get": _GET,
    "claim": _CLAIM,
    "renew": _RENEW,
    "complete": _COMPLETE,
    "retry": _RETRY,
    "release": _RELEASE,
    "revoke": _REVOKE,
    "counts": _COUNTS,
    "release_worker": _RELEASE_WORKER,
}

#: name -> SHA1 of the source (what EVALSHA names)
SHAS = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in SCRIPTS.items()}
