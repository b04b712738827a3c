"""The response cache's Lua scripts: each step is one atomic round trip to Redis.

`READ` checks that an entry is the caller's, then serves it (or a 304) and counts it, or
reports a miss with the generation the refill must present; `FILL` stores an entry only if
that generation still holds and no fence stands; `DROP` removes entries, moves their
generations on and raises or lowers their fences. Key layout:
`request_network.services.response_cache`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from redis import Redis
from redis.exceptions import NoScriptError

# KEYS: body, meta, gen, stats, hour bucket, reads. ARGV: now, id, bucket ttl, caller's user
# id, 1 to send a hit's body from here (else the caller GETs it in the same MULTI), tags...
# → {2, etag[, body]} a hit; {1, etag} a hit whose tag matched (304); {0, gen} no entry;
# {3} the entry is another user's (nothing counted or noted: the database answers, a 404).
READ = b"""
local now, rid = ARGV[1], ARGV[2]
local meta = redis.call('HMGET', KEYS[2], 'etag', 'user')
local etag = meta[1]
if etag and redis.call('EXISTS', KEYS[1]) == 1 then
  if meta[2] ~= ARGV[4] then return {3} end
  redis.call('ZADD', KEYS[6], now, rid)
  redis.call('HSETNX', KEYS[4], 'since', now)
  redis.call('HINCRBY', KEYS[4], 'hits', 1)
  redis.call('HINCRBY', KEYS[5], 'hits', 1)
  redis.call('EXPIRE', KEYS[5], ARGV[3])
  for i = 6, #ARGV do
    if ARGV[i] == etag or ARGV[i] == '*' then
      redis.call('HINCRBY', KEYS[4], 'not_modified', 1)
      return {1, etag}
    end
  end
  local n = redis.call('STRLEN', KEYS[1])
  redis.call('HINCRBY', KEYS[4], 'bytes', n)
  redis.call('HINCRBY', KEYS[5], 'bytes', n)
  if ARGV[5] == '1' then return {2, etag, redis.call('GET', KEYS[1])} end
  return {2, etag}
end
return {0, redis.call('GET', KEYS[3]) or '0'}
"""

# KEYS: body, meta, gen, fence, user set, index, stats, hour bucket, reads.
# ARGV: body, etag, user, version, ttl, generation read before the database, now, id,
# bucket ttl, '1' to count a read that missed, '1' if the body is too large to keep (then
# only counted as such; the body sent is empty).
FILL = b"""
if ARGV[10] == '1' then
  redis.call('ZADD', KEYS[9], ARGV[7], ARGV[8])
  redis.call('HSETNX', KEYS[7], 'since', ARGV[7])
  redis.call('HINCRBY', KEYS[7], 'misses', 1)
  redis.call('HINCRBY', KEYS[8], 'misses', 1)
  redis.call('EXPIRE', KEYS[8], ARGV[9])
end
if ARGV[11] == '1' then
  redis.call('HINCRBY', KEYS[7], 'not_cached_oversize', 1)
  return 0
end
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
if (redis.call('GET', KEYS[3]) or '0') ~= ARGV[6] then return 0 end
local have = redis.call('HGET', KEYS[2], 'version')
if have and tonumber(have) > tonumber(ARGV[4]) then return 0 end
local ttl = tonumber(ARGV[5])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'etag', ARGV[2], 'user', ARGV[3], 'version', ARGV[4],
           'size', string.len(ARGV[1]), 'at', ARGV[7])
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('SADD', KEYS[5], ARGV[8])
if redis.call('TTL', KEYS[5]) < ttl then redis.call('EXPIRE', KEYS[5], ttl) end
redis.call('ZADD', KEYS[6], tonumber(ARGV[7]) + ttl, ARGV[8])
redis.call('HINCRBY', KEYS[7], 'fills', 1)
return 1
"""

# KEYS: index, stats. ARGV: reason, fence step (1 raise, -1 lower, 0 none), generation ttl,
# fence ttl, ids... Drops each entry, moves its generation on; → {entries, bytes} dropped.
DROP = b"""
local removed, bytes, step = 0, 0, tonumber(ARGV[2])
for i = 5, #ARGV do
  local rid = ARGV[i]
  local body, meta = 'resp:' .. rid, 'resp:meta:' .. rid
  local user = redis.call('HGET', meta, 'user')
  local size = redis.call('STRLEN', body)
  if redis.call('DEL', body, meta) > 0 then
    removed = removed + 1
    bytes = bytes + size
  end
  redis.call('INCR', 'resp:gen:' .. rid)
  redis.call('EXPIRE', 'resp:gen:' .. rid, ARGV[3])
  redis.call('ZREM', KEYS[1], rid)
  if user then redis.call('SREM', 'resp:user:' .. user, rid) end
  local fence = 'resp:fence:' .. rid
  if step > 0 then
    redis.call('INCR', fence)
    redis.call('EXPIRE', fence, ARGV[4])
  elseif step < 0 and redis.call('EXISTS', fence) == 1 then
    if redis.call('DECR', fence) <= 0 then redis.call('DEL', fence) end
  end
end
if removed > 0 then redis.call('HINCRBY', KEYS[2], 'evicted_' .. ARGV[1], removed) end
return {removed, bytes}
"""

_SHA = {s: hashlib.sha1(s).hexdigest() for s in (READ, FILL, DROP)}  # noqa: S324 - Redis's


def run(cache: Redis, script: bytes, keys: list[str], args: list[Any]) -> Any:
    """EVALSHA, loading the script on NOSCRIPT (a restarted Redis, SCRIPT FLUSH)."""
    try:
        return cache.evalsha(_SHA[script], len(keys), *keys, *args)
    except NoScriptError:
        cache.script_load(script)
        return cache.evalsha(_SHA[script], len(keys), *keys, *args)


def run_then_get(
    cache: Redis, script: bytes, keys: list[str], args: list[Any], key: str
) -> tuple[Any, bytes | None]:
    """The script, then a GET of `key`, in one MULTI/EXEC: one round trip, atomic (nothing
    runs between the two), and the value arrives as Redis holds it (a value returned by a
    Lua script is copied into Lua and out again, which costs about a millisecond a MB)."""

    def once() -> tuple[Any, bytes | None]:
        pipe = cache.pipeline(transaction=True)
        pipe.evalsha(_SHA[script], len(keys), *keys, *args)
        pipe.get(key)
        reply, value = pipe.execute()
        return reply, value

    try:
        return once()
    except NoScriptError:  # the script did not run and a GET changes nothing: send it again
        cache.script_load(script)
        return once()
