package dedupe

import "github.com/redis/go-redis/v9"

// A record is one Redis string per key, a header line and the variable parts back to back:
//
//	<s><t> <x> <len(o)> <len(f)>\n<o><f><r>
//
//	s  state: 'c' claimed, 'd' done, 'r' released
//	t  fencing token, decimal; it only grows while the record exists
//	x  lease expiry, Unix milliseconds of the Redis server clock (claimed; 0 otherwise)
//	o  owner of the current (or last) claim, any bytes
//	f  fingerprint the key is bound to, any bytes
//	r  the rest of the value: when done, the outcome bytes; when claimed, the owner whose expired claim
//	   this claim took over, or a newline and the note of the release this claim followed, or ""; when
//	   released, the note the releasing owner left ("" for none)
//
// e.g. "c1 1763690400000 5 64\npod-a<64 hex chars>", or "c2 1763690460000 5 64\npod-b<64 hex chars>pod-a"
// after pod-b took pod-a's expired claim over. A string rather than a hash keeps a done record compact: a
// hash holding an outcome longer than hash-max-listpack-value (64 bytes by default) switches to the
// hashtable encoding, about 40% larger for a typical 600-byte outcome. Every write is one SET ... PX, so no
// record ever exists without a TTL. decodeRecord in store.go reads the same format.
//
// The takeover part of a claimed record was added after the first release; the format is otherwise
// unchanged and stays compatible both ways: a claimed record written before it has an empty rest and reads
// as "not a takeover", and a reader that predates it ignores the rest of a claimed record.
//
// Every script reads the clock with TIME on the server, so the replicas' clocks never matter. Writing after
// TIME needs script effects replication, the default since Redis 5.0 (Preflight refuses older servers).
// Numbers are written with string.format('%d') so they never turn into floats. A record the scripts cannot
// decode raises "dedupe: malformed record", which the store reports as ErrCorrupt (as it does WRONGTYPE).
//
// Every script may run twice with the same arguments (go-redis retries a command, and auto-pipelining a
// whole batch, when a connection drops after the script ran but before its reply arrived) and gives the
// same answer the second time; see "Scripts run twice" in the package doc.
const luaHelpers = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function num(n) return string.format('%d', n) end
local function encode(s, t, x, o, f, r)
  return s .. num(t) .. ' ' .. num(x) .. ' ' .. num(#o) .. ' ' .. num(#f) .. '\n' .. o .. f .. (r or '')
end
local function decode(v)
  local nl = string.find(v, '\n', 1, true)
  if nl then
    local s, t, x, lo, lf = string.match(string.sub(v, 1, nl - 1), '^([cdr])(%d+) (%d+) (%d+) (%d+)$')
    if s then
      lo, lf = tonumber(lo), tonumber(lf)
      if #v >= nl + lo + lf then
        return {s = s, t = tonumber(t), x = tonumber(x),
                o = string.sub(v, nl + 1, nl + lo),
                f = string.sub(v, nl + lo + 1, nl + lo + lf),
                r = string.sub(v, nl + lo + lf + 1)}
      end
    end
  end
  error('dedupe: malformed record')
end
`

// claimScript: KEYS[1] record; ARGV fingerprint, owner, lease ms, record TTL ms.
// Reply {state, token, owner, lease expiry ms, outcome, previous owner, note}; state 1 claimed, 2 in
// progress, 3 done, 4 conflict. The previous owner is set when the claim took over another owner's expired
// claim, the note when it claimed a key released with one — both also when the same owner claims again (a
// retried Claim), since the record keeps them.
var claimScript = redis.NewScript(luaHelpers + `
local key, fp, owner = KEYS[1], ARGV[1], ARGV[2]
local lease, ttl = tonumber(ARGV[3]), ARGV[4]
local v = redis.call('GET', key)
local now = now_ms()
if not v then
  local exp = now + lease
  redis.call('SET', key, encode('c', 1, exp, owner, fp), 'PX', ttl)
  return {1, 1, owner, exp, '', '', ''}
end
local r = decode(v)
if r.f ~= fp then
  return {4, 0, '', 0, '', '', ''}
end
if r.s == 'd' then
  return {3, r.t, r.o, 0, r.r, '', ''}
end
if r.s == 'c' then
  if r.o == owner then
    local exp = math.max(r.x, now + lease)
    redis.call('SET', key, encode('c', r.t, exp, owner, fp, r.r), 'PX', ttl)
    if string.sub(r.r, 1, 1) == '\n' then
      return {1, r.t, owner, exp, '', '', string.sub(r.r, 2)}
    end
    return {1, r.t, owner, exp, '', r.r, ''}
  end
  if r.x > now then
    return {2, r.t, r.o, r.x, '', '', ''}
  end
  -- another owner's expired claim: take it over, remembering whose it was
  local t, exp = r.t + 1, now + lease
  redis.call('SET', key, encode('c', t, exp, owner, fp, r.o), 'PX', ttl)
  return {1, t, owner, exp, '', r.o, ''}
end
-- a released claim: the next token, and the release's note kept for a retried claim
local t, exp = r.t + 1, now + lease
local rest = ''
if r.r ~= '' then
  rest = '\n' .. r.r
end
redis.call('SET', key, encode('c', t, exp, owner, fp, rest), 'PX', ttl)
return {1, t, owner, exp, '', '', r.r}
`)

// renewScript: KEYS[1] record; ARGV owner, token, lease ms, record TTL ms. Reply 1 renewed, 0 lease lost.
var renewScript = redis.NewScript(luaHelpers + `
local key = KEYS[1]
local v = redis.call('GET', key)
if not v then
  return 0
end
local r = decode(v)
if r.s ~= 'c' or r.o ~= ARGV[1] or r.t ~= tonumber(ARGV[2]) then
  return 0
end
redis.call('SET', key, encode('c', r.t, now_ms() + tonumber(ARGV[3]), r.o, r.f, r.r), 'PX', ARGV[4])
return 1
`)

// completeScript: KEYS[1] record; ARGV owner, token, outcome, retention ms. Reply 1 done, 0 lease lost.
// Completing again with the same owner, token and outcome succeeds without a write (a retried call).
var completeScript = redis.NewScript(luaHelpers + `
local key = KEYS[1]
local v = redis.call('GET', key)
if not v then
  return 0
end
local r = decode(v)
if r.o ~= ARGV[1] or r.t ~= tonumber(ARGV[2]) then
  return 0
end
if r.s == 'c' then
  redis.call('SET', key, encode('d', r.t, 0, r.o, r.f, ARGV[3]), 'PX', ARGV[4])
  return 1
end
if r.s == 'd' and r.r == ARGV[3] then
  return 1
end
return 0
`)

// releaseScript: KEYS[1] record; ARGV owner, token, record TTL ms, note. Reply 1 released, 0 lease lost.
// The record stays as a tombstone holding the token, the fingerprint and the note; releasing it again
// succeeds and changes nothing.
var releaseScript = redis.NewScript(luaHelpers + `
local key = KEYS[1]
local v = redis.call('GET', key)
if not v then
  return 0
end
local r = decode(v)
if r.o ~= ARGV[1] or r.t ~= tonumber(ARGV[2]) then
  return 0
end
if r.s == 'c' then
  redis.call('SET', key, encode('r', r.t, 0, r.o, r.f, ARGV[4]), 'PX', ARGV[3])
  return 1
end
if r.s == 'r' then
  return 1
end
return 0
`)

// scripts are every script the store runs, for LoadScripts and Preflight.
var scripts = []*redis.Script{claimScript, renewScript, completeScript, releaseScript}
