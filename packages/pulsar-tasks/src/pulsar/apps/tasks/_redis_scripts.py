"""The Lua scripts of the Redis backend: every state change is one script, so it is atomic
(see :mod:`._redis` for the keys). ``LIB`` is prepended to the scripts that end or recover
tasks: ``finalize`` (final fields and TTL in one HSET, lease, overlap key, done and reply
messages) and ``recover`` (a task whose worker died: queued again, or FAILURE 'lost').

The scripts on a task's path (enqueue, claim, complete) cost Redis most of its time per task,
and each ``redis.call`` is a command dispatched inside Redis: they read a record once (HGETALL
or one HMGET), write it once (one HSET), and build no string they do not return.
"""

from __future__ import annotations

import hashlib

from ._events import EVENTS_KEPT

__all__ = ["SCRIPTS", "SHAS"]

_LIB = """
local p = ARGV[1]
-- a number as Redis stores it when given one (fpconv_dtoa: the shortest exact form) is not
-- what Lua's tostring gives (14 digits): numbers a script also returns are stored as the
-- text %.17g gives, exact too, so the record stored and the one returned agree
local function num(x) return string.format('%.17g', x) end
-- a task event (see _events.py) appended to the capped stream {p}:events; EV is true only in
-- the "+ev" variants of the scripts (a backend recording events), where the caller says what
-- happened (kind, reason, error; ``wk``: the worker, when the change just cleared it); the rest
-- is read from the record
local function emit(k, id, kind, reason, now, err, wk)
  if not now then
    local t = redis.call('TIME')
    now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  end
  local v = redis.call('HMGET', k, 'name', 'queue', 'worker', 'attempts', 'progress',
    'meta_json')
  local prog, meta = '', ''
  if kind == 'progress' then prog, meta = v[5] or '', v[6] or '' end
  redis.call('XADD', p..':events', 'MAXLEN', '~', '{kept}', '*', 'time', num(now),
    'kind', kind, 'task_id', id, 'name', v[1] or '', 'queue', v[2] or 'default',
    'worker', wk or v[3] or '', 'attempts', v[4] or '0', 'progress', prog, 'meta_json', meta,
    'error', err or '', 'reason', reason or '')
end
-- the event of a final record written by finalize (its status and error in ``fields``)
local function emit_final(k, id, fields, now)
  local st, er
  for j = 1, #fields, 2 do
    if fields[j] == 'status' then st = fields[j + 1]
    elseif fields[j] == 'error' then er = fields[j + 1] end
  end
  local kinds = {SUCCESS = 'succeeded', FAILURE = 'failed', REVOKED = 'revoked'}
  local reason = false
  if st == 'REVOKED' then
    reason, er = er, false
  elseif st == 'FAILURE' and er then
    if string.sub(er, 1, 4) == 'lost' then reason = 'lost'
    elseif er == 'timeout' then reason = 'timeout' end
  else
    er = false
  end
  emit(k, id, kinds[st] or 'failed', reason, now, er)
end
-- the end of a task: ``fields`` (its final status, times, ...) and, with a TTL, purge_at in one
-- HSET; its lease and overlap key released; the final record published to whoever listens.
-- ``ov`` / ``rt`` / ``dp``: the record's overlap_key, reply_to and dependents when the caller
-- read them (nil: read here; false: none). Its DEFERRED dependents move on in this script.
local resolve
local function finalize(k, id, fields, now, ttl, ov, rt, dp)
  ttl = tonumber(ttl)
  if ttl > 0 then
    -- to the millisecond, and in the record: a reply or done message read after the TTL is
    -- known to be gone (as on SQLite)
    fields[#fields + 1] = 'purge_at'
    fields[#fields + 1] = tostring(now + ttl)
  end
  redis.call('HSET', k, unpack(fields))
  if EV then emit_final(k, id, fields, now) end
  if ttl > 0 then redis.call('PEXPIRE', k, math.ceil(ttl * 1000)) end
  redis.call('ZREM', p..':leases', id)
  if ov == nil then
    local v = redis.call('HMGET', k, 'overlap_key', 'reply_to', 'dependents')
    ov, rt, dp = v[1], v[2], v[3]
  end
  if ov and ov ~= '' and redis.call('GET', p..':ov:'..ov) == id then
    redis.call('DEL', p..':ov:'..ov)
  end
  if dp and dp ~= '' then resolve(id, now, ttl) end
  -- the final record itself (a waiter needs no read after the message), on the task's channel
  -- and on the reply channel of the client that queued it ("<id> <record>"); read and encoded
  -- only when someone listens (a waiter reads the record after subscribing: nothing is missed)
  local done = p..':done:'..id
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
-- the pending set of queue q for priority pr: {p}:q:<queue> for 0 (as before priorities),
-- {p}:qp:<priority>:<queue> for the others, which {p}:prios:<queue> lists (see _schedule)
local function qkey(q, pr)
  if pr and pr ~= '' and pr ~= '0' then return p..':qp:'..pr..':'..q end
  return p..':q:'..q
end
local function qadd(q, pr, score, id)
  if pr and pr ~= '' and pr ~= '0' then
    redis.call('SADD', p..':prios:'..q, pr)
    redis.call('ZADD', p..':qp:'..pr..':'..q, score, id)
  else
    redis.call('ZADD', p..':q:'..q, score, id)
  end
end
-- a queue has work: one wake-up pushed, the list kept to its last 64
local function wake(q)
  if redis.call('RPUSH', p..':wake:'..q, '1') > 64 then
    redis.call('LTRIM', p..':wake:'..q, -64, -1)
  end
end
-- depends_on (see _workflow.py): the rules of _sqlite_deps.py, in Lua
local HEAD = '{"args": ['
local function inject(payload, value)
  if string.sub(payload, 1, #HEAD) ~= HEAD then
    local data = cjson.decode(payload)
    table.insert(data['args'], 1, cjson.decode(value))
    return cjson.encode(data)
  end
  local rest = string.sub(payload, #HEAD + 1)
  if string.sub(rest, 1, 1) == ']' then return HEAD..value..rest end
  return HEAD..value..', '..rest
end
local function reason(id, name, st, err)
  if err and string.sub(err, 1, 11) == 'dependency ' then return err end
  local out = 'dependency '..((name and name ~= '') and name or '?')..'['..id..'] '..st
  if err and err ~= '' then out = out..': '..err end
  return out
end
-- a DEFERRED task whose dependencies all succeeded: QUEUED with its results injected, or (a
-- workflow's record, inject result/results) SUCCESS with them
local function release(d, now, ttl)
  local dk = p..':t:'..d
  local w = redis.call('HMGET', dk, 'inject', 'depends', 'payload', 'eta', 'queue', 'priority')
  local inj = w[1] or ''
  local value = nil
  if inj ~= '' then
    local ok, deps = pcall(cjson.decode, w[2] or '[]')
    if not ok or type(deps) ~= 'table' then deps = {} end
    local parts = {}
    for i, x in ipairs(deps) do
      local r = redis.call('HGET', p..':t:'..x, 'result_json')
      if not r or r == '' then r = 'null' end
      parts[i] = r
      if inj == 'arg' or inj == 'result' then break end
    end
    if inj == 'arg' or inj == 'result' then value = parts[1] or 'null'
    else value = '['..table.concat(parts, ', ')..']' end
  end
  if inj == 'result' or inj == 'results' then
    finalize(dk, d, {'status', 'SUCCESS', 'result_json', value, 'waiting', '0',
      'time_finished', now}, now, ttl)
    return
  end
  local fields = {'status', 'QUEUED', 'waiting', '0'}
  if value then
    fields[#fields + 1] = 'payload'
    fields[#fields + 1] = inject(w[3] or '', value)
  end
  local eta = math.max(tonumber(w[4] or '') or 0, tonumber(now))
  fields[#fields + 1] = 'eta'
  fields[#fields + 1] = num(eta)
  redis.call('HSET', dk, unpack(fields))
  local q = w[5] or 'default'
  if EV then emit(dk, d, 'queued', 'released', tonumber(now), false) end
  qadd(q, w[6], eta, d)
  wake(q)
end
local function fail(d, inj, why, now, ttl)
  local st = 'REVOKED'
  if inj == 'result' or inj == 'results' then st = 'FAILURE' end
  finalize(p..':t:'..d, d, {'status', st, 'error', why, 'waiting', '0', 'time_finished', now},
    now, ttl)
end
-- the task ``id`` ended: each DEFERRED dependent is counted down and released at 0, or
-- revoked when it failed. finalize calls this for those that end in turn (the cascade): they
-- are pushed on a stack that the outermost call works through, so a cascade of any length
-- takes no Lua stack (a script that fails half-way would not be undone)
local stack, resolving = {}, false
local function resolve_one(id, now, ttl)
  local v = redis.call('HMGET', p..':t:'..id, 'status', 'name', 'error', 'dependents')
  local ok, list = pcall(cjson.decode, v[4] or '')
  if not ok or type(list) ~= 'table' then return end
  for _, d in ipairs(list) do
    local dk = p..':t:'..d
    local w = redis.call('HMGET', dk, 'status', 'waiting', 'inject')
    if w[1] == 'DEFERRED' then
      if v[1] == 'SUCCESS' then
        local left = (tonumber(w[2] or '') or 1) - 1
        if left > 0 then redis.call('HSET', dk, 'waiting', left)
        else release(d, now, ttl) end
      elseif v[1] == 'FAILURE' or v[1] == 'REVOKED' then
        fail(d, w[3] or '', reason(id, v[2], v[1], v[3]), now, ttl)
      end
    end
  end
end
resolve = function(id, now, ttl)
  stack[#stack + 1] = id
  if resolving then return end
  resolving = true
  while #stack > 0 do resolve_one(table.remove(stack), now, ttl) end
  resolving = false
end
-- a STARTED task whose worker died: queued again (and its queue woken), or FAILURE 'lost'
-- once out of retries
local function recover(id, now, ttl)
  local k = p..':t:'..id
  redis.call('ZREM', p..':leases', id)
  local v = redis.call('HMGET', k, 'status', 'attempts', 'max_retries', 'queue', 'priority',
    'worker')
  if v[1] ~= 'STARTED' then return end
  local att = tonumber(v[2] or '0') or 0
  local mr = tonumber(v[3] or '0') or 0
  if att > mr then
    finalize(k, id, {'status', 'FAILURE', 'time_finished', now, 'token', '', 'lease_expires', '',
      'error', 'lost: the worker running it died or stopped answering ('..att..' attempts)'},
      now, ttl)
  else
    local q = v[4] or 'default'
    redis.call('HSET', k, 'status', 'QUEUED', 'token', '', 'worker', '', 'lease_expires', '',
      'eta', now)
    if EV then emit(k, id, 'retried', 'lost', now, false, v[6]) end  -- (the worker that died)
    qadd(q, v[5], now, id)
    wake(q)
  end
end
""".replace("{kept}", str(EVENTS_KEPT))

# ARGV: prefix, then a JSON array with per task [id, unique, queue, eta, time_queued,
# overlap_key, the record as an object of strings] (one argument for the whole batch: packing
# seven per task cost more in redis-py than the rest of the call); returns per task 1 (stored),
# 0 (unique and exists), -1 (not unique and exists) or the id of the task holding its overlap
# key
_ENQUEUE = (
    _LIB
    + """
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
  if res == 1 then  -- a new key (EXISTS said so): nothing to delete first
    local flat, n = {}, 0
    for f, v in pairs(item[7]) do
      flat[n + 1] = f
      flat[n + 2] = v
      n = n + 2
    end
    redis.call('HSET', k, unpack(flat))
    if EV then emit(k, id, 'queued', false, tonumber(tq), false) end
    qadd(queue, item[7]['priority'], eta, id)
    redis.call('ZADD', p..':all', tq, id)
    woken[queue] = true
  end
  out[#out + 1] = res
end
for queue in pairs(woken) do wake(queue) end  -- one wake-up per queue and batch
return out
"""
)

# ARGV: prefix, now, ttl, a JSON array of [id, queue, eta, time_queued, the record as an object
# of strings, [dependency ids]] in dependency order -> {'ok'}, {'duplicate', id} or
# {'unknown', dependency id}; nothing is stored unless 'ok' (see Backend.enqueue_flow)
_ENQUEUE_FLOW = (
    _LIB
    + """
local now = tonumber(ARGV[2])
local ttl = ARGV[3]
local items = cjson.decode(ARGV[4])
local seen = {}
for _, item in ipairs(items) do
  local id = item[1]
  if seen[id] or redis.call('EXISTS', p..':t:'..id) == 1 then return {'duplicate', id} end
  for _, dep in ipairs(item[6]) do
    if not seen[dep] and redis.call('EXISTS', p..':t:'..dep) == 0 then
      return {'unknown', dep}
    end
  end
  seen[id] = true
end
local woken = {}
for _, item in ipairs(items) do
  local id, queue, eta, tq, rec, deps = item[1], item[2], item[3], item[4], item[5], item[6]
  local k = p..':t:'..id
  local waiting, failed = 0, nil
  for _, dep in ipairs(deps) do
    local dk = p..':t:'..dep
    local v = redis.call('HMGET', dk, 'status', 'name', 'error', 'dependents')
    if v[1] == 'FAILURE' or v[1] == 'REVOKED' then
      failed = failed or reason(dep, v[2], v[1], v[3])
    elseif v[1] ~= 'SUCCESS' then
      waiting = waiting + 1
      local ok, list = pcall(cjson.decode, v[4] or '')
      if not ok or type(list) ~= 'table' then list = {} end
      list[#list + 1] = id
      redis.call('HSET', dk, 'dependents', cjson.encode(list))
    end
  end
  if #deps > 0 then
    rec['status'] = 'DEFERRED'
    rec['waiting'] = tostring(waiting)
  end
  local flat, n = {}, 0
  for f, v in pairs(rec) do
    flat[n + 1] = f
    flat[n + 2] = v
    n = n + 2
  end
  redis.call('HSET', k, unpack(flat))
  redis.call('ZADD', p..':all', tq, id)
  if EV then emit(k, id, 'queued', #deps > 0 and 'deferred' or false, tonumber(tq), false) end
  if #deps == 0 then
    qadd(queue, rec['priority'], eta, id)
    woken[queue] = (woken[queue] or 0) + 1
  elseif failed then
    fail(id, rec['inject'] or '', failed, now, ttl)
  elseif waiting == 0 then
    release(id, now, ttl)
  end
end
-- one wake-up per task (up to 64): a group's members wake as many idle workers
for queue, n in pairs(woken) do
  local ones = {}
  for i = 1, math.min(n, 64) do ones[i] = '1' end
  if redis.call('RPUSH', p..':wake:'..queue, unpack(ones)) > 64 then
    redis.call('LTRIM', p..':wake:'..queue, -64, -1)
  end
end
return {'ok'}
"""
)

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
# Per claimed task: one HGETALL (status, expires, attempts and the record returned), one HSET,
# one ZADD to the leases; the due ids of a queue leave it in one ZREM
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
local worker = ARGV[5]
local ttl = ARGV[7]
local started, expires = num(now), num(now + lease)
local lost = redis.call('ZRANGEBYSCORE', p..':leases', '-inf', now, 'LIMIT', 0, 1000)
for _, id in ipairs(lost) do recover(id, now, ttl) end
local out = {}
local nxt = nil
-- the due tasks of the pending set qk (up to the limit) into out; returns the first id left
local function take(qk)
  if #out < limit * 2 then
    local ids = redis.call('ZRANGEBYSCORE', qk, '-inf', now, 'LIMIT', 0, limit - #out / 2)
    for j = 1, #ids, 1000 do
      redis.call('ZREM', qk, unpack(ids, j, math.min(j + 999, #ids)))
    end
    for _, id in ipairs(ids) do
      local k = p..':t:'..id
      local flat = redis.call('HGETALL', k)
      local row = {}
      for j = 1, #flat, 2 do row[flat[j]] = flat[j + 1] end
      local st = row['status']
      if st == 'QUEUED' or st == 'RETRY' then
        local exp = tonumber(row['expires'] or '')
        if exp and exp < now then
          finalize(k, id, {'status', 'REVOKED', 'error', 'expired', 'time_finished', now}, now,
            ttl, row['overlap_key'] or false, row['reply_to'] or false,
            row['dependents'] or false)
        else
          local att = tostring(math.floor(tonumber(row['attempts'] or '') or 0) + 1)
          local token = ARGV[6]..':'..att
          redis.call('HSET', k, 'status', 'STARTED', 'worker', worker, 'token', token,
            'time_started', started, 'lease_expires', expires, 'revoke', '0', 'attempts', att)
          redis.call('ZADD', p..':leases', expires, id)
          if EV then emit(k, id, 'started', false, now, false) end
          row['status'] = 'STARTED'
          row['worker'] = worker
          row['token'] = token
          row['time_started'] = started
          row['lease_expires'] = expires
          row['revoke'] = '0'
          row['attempts'] = att
          -- one JSON string per task: decoded in C, not as 40 RESP items in Python
          out[#out + 1] = id
          out[#out + 1] = cjson.encode(row)
        end
      end
    end
  end
  local first = redis.call('ZRANGE', qk, 0, 0, 'WITHSCORES')
  if first[2] and (nxt == nil or tonumber(first[2]) < nxt) then nxt = tonumber(first[2]) end
  return first[1]
end
for i = 8, #ARGV do
  local q = ARGV[i]
  -- priorities above 0 first, highest first (a queue without any: one SMEMBERS of nothing)
  local pk = p..':prios:'..q
  local prs = redis.call('SMEMBERS', pk)
  if #prs > 0 then
    table.sort(prs, function(a, b) return tonumber(a) > tonumber(b) end)
    for _, pr in ipairs(prs) do
      if not take(p..':qp:'..pr..':'..q) then redis.call('SREM', pk, pr) end
    end
  end
  take(p..':q:'..q)
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
  local v = redis.call('HMGET', k, 'token', 'status', 'overlap_key', 'reply_to', 'dependents')
  if v[1] ~= item[2] or v[2] ~= 'STARTED' then
    out[#out + 1] = 0
  else
    finalize(k, id, {'status', item[3], 'result_json', item[4], 'error', item[5],
      'traceback', item[6], 'time_finished', now, 'token', '', 'lease_expires', ''}, now,
      ARGV[3], v[3] or false, v[4] or false, v[5] or false)
    out[#out + 1] = 1
  end
end
return out
"""
)

# ARGV: prefix, id, token, eta, error, traceback
_RETRY = (
    _LIB
    + """
local id = ARGV[2]
local k = p..':t:'..id
local v = redis.call('HMGET', k, 'token', 'status', 'queue', 'priority', 'revoke')
if v[1] ~= ARGV[3] or v[2] ~= 'STARTED' or v[5] == '1' then return 0 end
redis.call('HSET', k, 'status', 'RETRY', 'eta', ARGV[4], 'error', ARGV[5], 'traceback', ARGV[6],
  'token', '', 'lease_expires', '')
if EV then emit(k, id, 'retried', false, nil, ARGV[5]) end
redis.call('ZREM', p..':leases', id)
qadd(v[3], v[4], ARGV[4], id)
wake(v[3])
return 1
"""
)

# ARGV: prefix, id, token, eta (now; a postpone's later time): QUEUED again, the attempt not
# counted, its priority kept (0, no change, when the task was revoked while it ran: the worker
# records REVOKED instead)
_RELEASE = (
    _LIB
    + """
local id = ARGV[2]
local k = p..':t:'..id
local v = redis.call('HMGET', k, 'token', 'status', 'queue', 'attempts', 'priority', 'worker',
  'revoke')
if v[1] ~= ARGV[3] or v[2] ~= 'STARTED' or v[7] == '1' then return 0 end
local att = math.max(0, (tonumber(v[4]) or 1) - 1)
redis.call('HSET', k, 'status', 'QUEUED', 'token', '', 'worker', '', 'lease_expires', '',
  'eta', ARGV[4], 'attempts', att)
if EV then emit(k, id, 'queued', 'released', tonumber(ARGV[4]), false, v[6]) end
redis.call('ZREM', p..':leases', id)
qadd(v[3], v[5], ARGV[4], id)
wake(v[3])
return 1
"""
)

# ARGV: prefix, id, now, ttl
_REVOKE = (
    _LIB
    + """
local id = ARGV[2]
local k = p..':t:'..id
local v = redis.call('HMGET', k, 'status', 'queue', 'name', 'priority')
if not v[1] then return false end
if v[1] == 'QUEUED' or v[1] == 'RETRY' or v[1] == 'DEFERRED' then
  -- the TTL the workers of this job use (published with the job), else this client's
  local ttl = ARGV[4]
  local meta = v[3] and redis.call('HGET', p..':jobs', v[3])
  if meta then
    local ok, m = pcall(cjson.decode, meta)
    if ok and type(m) == 'table' and type(m['result_ttl']) == 'number' then
      ttl = tostring(m['result_ttl'])
    end
  end
  redis.call('ZREM', qkey(v[2], v[4]), id)
  finalize(k, id, {'status', 'REVOKED', 'error', 'revoked', 'time_finished', ARGV[3],
    'token', ''}, tonumber(ARGV[3]), ttl)
  return 'REVOKED'
end
if v[1] == 'STARTED' then redis.call('HSET', k, 'revoke', '1') end
return v[1]
"""
)


# ARGV: prefix, start, stop[, by_queue] -> {ids seen, ids gone, status, count, ...}, or with
# by_queue '1' {ids seen, ids gone, queue, status, count, ...}; records gone (expired results)
# are dropped from the index
_COUNTS = """
local p = ARGV[1]
local by_queue = ARGV[4] == '1'
local ids = redis.call('ZRANGE', p..':all', ARGV[2], ARGV[3])
local tally = {}
local gone = {}
for _, id in ipairs(ids) do
  if by_queue then
    local v = redis.call('HMGET', p..':t:'..id, 'status', 'queue')
    if v[1] then
      local q = tally[v[2] or 'default']
      if not q then q = {}; tally[v[2] or 'default'] = q end
      q[v[1]] = (q[v[1]] or 0) + 1
    else
      table.insert(gone, id)
    end
  else
    local st = redis.call('HGET', p..':t:'..id, 'status')
    if st then tally[st] = (tally[st] or 0) + 1 else table.insert(gone, id) end
  end
end
for i = 1, #gone, 1000 do
  redis.call('ZREM', p..':all', unpack(gone, i, math.min(i + 999, #gone)))
end
local out = {#ids, #gone}
if by_queue then
  for q, states in pairs(tally) do
    for st, n in pairs(states) do
      table.insert(out, q); table.insert(out, st); table.insert(out, n)
    end
  end
else
  for st, n in pairs(tally) do table.insert(out, st); table.insert(out, n) end
end
return out
"""

# ARGV: prefix, queue, now, ttl, limit -> {purged, ids looked at}: the first ``limit`` ids of
# the queue's pending set; those still QUEUED/RETRY become REVOKED 'purged' (kept for the TTL
# their job's workers published, else ``ttl``), as a revoke would make them
_PURGE = (
    _LIB
    + """
local q = ARGV[2]
local now = tonumber(ARGV[3])
local limit = tonumber(ARGV[5])
-- up to ``limit`` ids of the queue's pending sets: those of its priorities first
local keys = {}
local pk = p..':prios:'..q
for _, pr in ipairs(redis.call('SMEMBERS', pk)) do keys[#keys + 1] = p..':qp:'..pr..':'..q end
keys[#keys + 1] = p..':q:'..q
local ids, from = {}, {}
for _, qk in ipairs(keys) do
  if #ids < limit then
    for _, id in ipairs(redis.call('ZRANGE', qk, 0, limit - #ids - 1)) do
      ids[#ids + 1] = id
      from[#ids] = qk
    end
  end
end
local ttls = {}
local n = 0
for i, id in ipairs(ids) do
  redis.call('ZREM', from[i], id)
  local k = p..':t:'..id
  local v = redis.call('HMGET', k, 'status', 'name')
  if v[1] == 'QUEUED' or v[1] == 'RETRY' then
    local name = v[2] or ''
    local ttl = ttls[name]
    if not ttl then
      ttl = ARGV[4]
      local meta = redis.call('HGET', p..':jobs', name)
      if meta then
        local ok, m = pcall(cjson.decode, meta)
        if ok and type(m) == 'table' and type(m['result_ttl']) == 'number' then
          ttl = tostring(m['result_ttl'])
        end
      end
      ttls[name] = ttl
    end
    finalize(k, id, {'status', 'REVOKED', 'error', 'purged', 'time_finished', ARGV[3],
      'token', ''}, now, ttl)
    n = n + 1
  end
end
return {n, #ids}
"""
)

# ARGV: prefix, id, now -> false (no such task), the state it was in (requeued when FAILURE or
# REVOKED, unchanged otherwise) or 'overlap:<id of the task holding its overlap key>'
_REQUEUE = (
    _LIB
    + """
local id = ARGV[2]
local now = ARGV[3]
local k = p..':t:'..id
local v = redis.call('HMGET', k, 'status', 'queue', 'overlap_key', 'priority')
if not v[1] then return false end
if v[1] ~= 'FAILURE' and v[1] ~= 'REVOKED' then return v[1] end
local ov = v[3]
if ov and ov ~= '' then
  local other = redis.call('GET', p..':ov:'..ov)
  if other and other ~= id then
    local st = redis.call('HGET', p..':t:'..other, 'status')
    if st == 'QUEUED' or st == 'RETRY' or st == 'STARTED' then return 'overlap:'..other end
  end
  redis.call('SET', p..':ov:'..ov, id)
end
local q = v[2] or 'default'
redis.call('PERSIST', k)
redis.call('HSET', k, 'status', 'QUEUED', 'attempts', '0', 'result_json', '', 'error', '',
  'traceback', '', 'worker', '', 'token', '', 'time_queued', now, 'time_started', '',
  'time_finished', '', 'eta', now, 'expires', '', 'lease_expires', '', 'revoke', '0',
  'purge_at', '', 'reply_to', '', 'progress', '', 'meta_json', '')
if EV then emit(k, id, 'queued', 'requeued', tonumber(now), false) end
local pr = v[4]
if pr and pr ~= '' and pr ~= '0' then  -- its priority kept (see _schedule)
  redis.call('SADD', p..':prios:'..q, pr)
  redis.call('ZADD', p..':qp:'..pr..':'..q, now, id)
else
  redis.call('ZADD', p..':q:'..q, now, id)
end
redis.call('ZADD', p..':all', now, id)
redis.call('RPUSH', p..':wake:'..q, '1')
redis.call('LTRIM', p..':wake:'..q, -64, -1)
return v[1]
"""
)

# ARGV: prefix, now, a JSON array of [id, token, progress, meta_json] ('' leaves a field as it
# is) -> per item 1 (stored) or 0 (stale token or not running)
_PROGRESS = (
    _LIB
    + """
local now = tonumber(ARGV[2])
local out = {}
for _, item in ipairs(cjson.decode(ARGV[3])) do
  local id = item[1]
  local k = p..':t:'..id
  local v = redis.call('HMGET', k, 'token', 'status')
  if v[1] ~= item[2] or v[2] ~= 'STARTED' then
    out[#out + 1] = 0
  else
    local f = {}
    if item[3] ~= '' then f[#f + 1] = 'progress'; f[#f + 1] = item[3] end
    if item[4] ~= '' then f[#f + 1] = 'meta_json'; f[#f + 1] = item[4] end
    if #f > 0 then redis.call('HSET', k, unpack(f)) end
    if EV then emit(k, id, 'progress', false, now, false) end
    out[#out + 1] = 1
  end
end
return out
"""
)

# ARGV: prefix, key, limit, period -> '0' (admitted: the start is counted) or the seconds until
# a start is allowed. {p}:rate:<key> lists the times (the server's clock) of the last
# ``limit`` admissions, oldest first (see _schedule)
_ACQUIRE_RATE = """
local k = ARGV[1]..':rate:'..ARGV[2]
local limit = tonumber(ARGV[3])
local period = tonumber(ARGV[4])
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = redis.call('LLEN', k)
if n >= limit then
  local free_at = (tonumber(redis.call('LINDEX', k, n - limit)) or 0) + period
  if free_at > now then return string.format('%.17g', math.max(free_at - now, 0.001)) end
end
redis.call('RPUSH', k, string.format('%.17g', now))
if n + 1 > limit then redis.call('LTRIM', k, -limit, -1) end
redis.call('PEXPIRE', k, math.ceil(period * 1000) + 1000)
return '0'
"""

#: name -> source, registered by each RedisBackend client
_BASE = {
    "enqueue": _ENQUEUE,
    "enqueue_flow": _ENQUEUE_FLOW,
    "get": _GET,
    "claim": _CLAIM,
    "renew": _RENEW,
    "complete": _COMPLETE,
    "retry": _RETRY,
    "release": _RELEASE,
    "revoke": _REVOKE,
    "counts": _COUNTS,
    "release_worker": _RELEASE_WORKER,
    "purge": _PURGE,
    "requeue": _REQUEUE,
    "acquire_rate": _ACQUIRE_RATE,
    "progress": _PROGRESS,
}
# each script twice: as is (EV false: no event, not one command more) and as "<name>+ev", the
# variant of a backend recording task events (see _events.py)
SCRIPTS = {
    **{name: "local EV = false\n" + source for name, source in _BASE.items()},
    **{name + "+ev": "local EV = true\n" + source for name, source in _BASE.items()},
}

#: name -> SHA1 of the source (what EVALSHA names)
SHAS = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in SCRIPTS.items()}
