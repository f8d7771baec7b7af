-- A staff action on a live lot, as one event with the next sequence number:
--   extend  ARGV[3] = new end (ms)
--   cancel  (no argument)
--   reset   ARGV[3] = JSON {price, leader, leader_max, leader_masked, bid_count, bidders,
--           voided_seq, expected_seq}; rejected with seq_changed unless the lot's seq
--           is still expected_seq (when given)
--           (a void: the price recomputed in Python from the remaining bids)
--           and voided_receipt ("user:client" of the voided bid, whose retry is then
--           rejected with bid_voided instead of answered "accepted")
--   settle  ARGV[3] = final status (sold, unsold, held) after PostgreSQL committed the close;
--           the lot's keys then expire after ARGV[5] seconds (PostgreSQL keeps the record)
--   hold    ARGV[3] = reason; an open or closing lot stops taking bids until staff review
-- Extend and reset are rejected with lot_ended once the end has passed, so nothing is
-- accepted or repriced after the deadline while the closer has not run yet.
-- Returns {ok=true, seq=...} or {ok=false, code=...}.

local state_key   = KEYS[1]
local stream_key  = KEYS[2]
local ends_key    = KEYS[3]
local bidders_key = KEYS[4]
local receipts_key = KEYS[5]

local channel     = ARGV[1]
local action      = ARGV[2]
local argument    = ARGV[3]
local actor_id    = ARGV[4] or "0"
local settled_ttl_s = tonumber(ARGV[5] or "0")

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

local function publish(event)
    redis.call("PUBLISH", channel, cjson.encode({
        type = "lot", event = event, lot_id = tonumber(s.lot_id), seq = tonumber(s.seq),
        status = s.status, price_won = tonumber(s.price), bid_count = tonumber(s.bid_count),
        leader_id = tonumber(s.leader), leader_masked = s.leader_masked or "",
        end_ms = tonumber(s.end_ms), server_ms = now_ms,
    }))
end

if action == "settle" then
    if s.status ~= "closing" and s.status ~= argument then
        return cjson.encode({ok = false, code = "not_closing", status = s.status})
    end
    s.status = argument
    redis.call("HSET", state_key, "status", argument)
    redis.call("ZREM", ends_key, s.lot_id)
    if settled_ttl_s > 0 then
        for _, key in ipairs({state_key, bidders_key, receipts_key}) do
            redis.call("EXPIRE", key, settled_ttl_s)
        end
    end
    publish("settled")
    return cjson.encode({ok = true, seq = tonumber(s.seq)})
end

if action == "hold" then
    if s.status == "held" then
        return cjson.encode({ok = true, seq = tonumber(s.seq), changed = false})
    end
    if s.status ~= "open" and s.status ~= "closing" then
        return cjson.encode({ok = false, code = "not_open", status = s.status})
    end
    s.status = "held"
    redis.call("HSET", state_key, "status", "held")
    redis.call("ZREM", ends_key, s.lot_id)
    publish("held")
    return cjson.encode({ok = true, seq = tonumber(s.seq), changed = true})
end

if s.status ~= "open" then
    return cjson.encode({ok = false, code = "not_open", status = s.status})
end

if (action == "extend" or action == "reset") and now_ms >= tonumber(s.end_ms) then
    return cjson.encode({ok = false, code = "lot_ended"})
end

local extra_voided = "0"
if action == "extend" then
    local new_end = tonumber(argument)
    if new_end <= now_ms or new_end <= tonumber(s.end_ms) then
        return cjson.encode({ok = false, code = "end_not_later"})
    end
    s.end_ms = string.format("%d", new_end)
    redis.call("ZADD", ends_key, new_end, s.lot_id)
elseif action == "cancel" then
    s.status = "cancelled"
    redis.call("ZREM", ends_key, s.lot_id)
elseif action == "reset" then
    local r = cjson.decode(argument)
    -- The price was recomputed from the bids up to expected_seq; a bid accepted since
    -- would be lost by the reset, so the caller recomputes and tries again.
    if r.expected_seq ~= nil and tonumber(r.expected_seq) ~= tonumber(s.seq) then
        return cjson.encode({ok = false, code = "seq_changed", seq = tonumber(s.seq)})
    end
    s.price = string.format("%d", r.price)
    s.leader = string.format("%d", r.leader)
    s.leader_max = string.format("%d", r.leader_max)
    s.leader_masked = r.leader_masked
    s.bid_count = string.format("%d", r.bid_count)
    extra_voided = string.format("%d", r.voided_seq)
    redis.call("DEL", bidders_key)
    for user, max_won in pairs(r.bidders) do
        redis.call("HSET", bidders_key, user, string.format("%d", max_won))
    end
    if r.voided_receipt ~= nil and r.voided_receipt ~= cjson.null then
        redis.call("HSET", receipts_key, r.voided_receipt, cjson.encode({voided = true}))
    end
else
    return cjson.encode({ok = false, code = "unknown_action"})
end

local seq = tonumber(s.seq) + 1
s.seq = string.format("%d", seq)
redis.call("HSET", state_key, "status", s.status, "seq", s.seq, "end_ms", s.end_ms,
    "price", s.price, "leader", s.leader, "leader_max", s.leader_max,
    "leader_masked", s.leader_masked or "", "bid_count", s.bid_count)
local kind = action
if action == "reset" then
    kind = "void"
end
redis.call("XADD", stream_key, "*",
    "lot", s.lot_id, "seq", s.seq, "kind", kind, "user", actor_id, "client", "",
    "amount", "0", "price", s.price, "leader", s.leader, "end_ms", s.end_ms,
    "server_ms", string.format("%d", now_ms), "voided_seq", extra_voided)
publish(kind)
return cjson.encode({ok = true, seq = seq})
