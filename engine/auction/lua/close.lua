-- Close a lot whose end has passed: open -> closing, one "close" event appended to
-- the ledger stream with the lot's last sequence number. Returns the lot's state
-- as JSON, or an error code when it is not due; a lot already closing returns its
-- state again, so a closer that died after this step can finish the job.

local state_key  = KEYS[1]
local stream_key = KEYS[2]
local ends_key   = KEYS[3]

local channel    = ARGV[1]

if redis.call("EXISTS", state_key) == 0 then
    return cjson.encode({ok = false, code = "lot_not_loaded"})
end

local fields = redis.call("HGETALL", state_key)
local s = {}
for i = 1, #fields, 2 do
    s[fields[i]] = fields[i + 1]
end

local time = redis.call("TIME")
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

if s.status == "open" then
    if now_ms < tonumber(s.end_ms) then
        return cjson.encode({ok = false, code = "not_due", end_ms = tonumber(s.end_ms)})
    end
    local seq = tonumber(s.seq) + 1
    s.seq = string.format("%d", seq)
    s.status = "closing"
    redis.call("HSET", state_key, "status", "closing", "seq", s.seq)
    redis.call("XADD", stream_key, "*",
        "lot", s.lot_id, "seq", s.seq, "kind", "close", "user", "0", "client", "",
        "amount", "0", "price", s.price, "leader", s.leader, "end_ms", s.end_ms,
        "server_ms", string.format("%d", now_ms))
    redis.call("PUBLISH", channel, cjson.encode({
        type = "lot", event = "close", lot_id = tonumber(s.lot_id), seq = seq,
        status = "closing", price_won = tonumber(s.price), bid_count = tonumber(s.bid_count),
        leader_id = tonumber(s.leader), leader_masked = s.leader_masked or "",
        end_ms = tonumber(s.end_ms), server_ms = now_ms,
    }))
elseif s.status ~= "closing" then
    redis.call("ZREM", ends_key, s.lot_id)
    return cjson.encode({ok = false, code = "not_open", status = s.status})
end

s.server_ms = now_ms
return cjson.encode({ok = true, state = s})
