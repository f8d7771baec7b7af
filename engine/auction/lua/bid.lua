-- Apply one bid or buy-now to a lot atomically: validate everything, then write.
-- The rules match engine/auction/rules.py, which is the model for this script.
--
-- Returns a JSON object: {ok=true, receipt=..., snapshot=...} or
-- {ok=false, code=..., snapshot=...}. Rejections write nothing.

local state_key    = KEYS[1]
local bidders_key  = KEYS[2]
local receipts_key = KEYS[3]
local stream_key   = KEYS[4]
local ends_key     = KEYS[5]

local kind         = ARGV[1]            -- "bid" or "buy_now"
local user_id      = tonumber(ARGV[2])
local client_id    = ARGV[3]
local amount_text  = ARGV[4]            -- the bidder's maximum; ignored for buy_now
local amount       = tonumber(amount_text)
local masked_name  = ARGV[5]
local bidder_supplier_id = tonumber(ARGV[6])  -- 0 when the bidder is no supplier
local channel      = ARGV[7]

local max_amount   = 10000000000  -- rules.MAX_AMOUNT_WON

local function num(value)
    return tonumber(value) or 0
end

local function fmt(value)
    return string.format("%d", value)
end

if redis.call("EXISTS", state_key) == 0 then
    return cjson.encode({ok = false, code = "lot_not_loaded"})
end

local fields = redis.call("HGETALL", state_key)
local s = {}
for i = 1, #fields, 2 do
    s[fields[i]] = fields[i + 1]
end

local increments = {}
for start, step in string.gmatch(s.inc, "(%d+):(%d+)") do
    increments[#increments + 1] = {tonumber(start), tonumber(step)}
end

local function increment_for(value)
    local step = increments[1][2]
    for _, band in ipairs(increments) do
        if value >= band[1] then
            step = band[2]
        else
            break
        end
    end
    return step
end

local status      = s.status
local seq         = num(s.seq)
local price       = num(s.price)
local leader      = num(s.leader)
local leader_max  = num(s.leader_max)
local bid_count   = num(s.bid_count)
local end_ms      = num(s.end_ms)
local start_price = num(s.start_price)
local reserve     = num(s.reserve)
local buy_now     = num(s.buy_now)
local leader_masked = s.leader_masked or ""

local time = redis.call("TIME")
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local function min_next()
    if bid_count == 0 then
        return start_price
    end
    return price + increment_for(price)
end

local function reserve_met(p, count)
    if reserve == 0 then
        return cjson.null
    end
    return count > 0 and p >= reserve
end

local function snapshot()
    return {
        lot_id = tonumber(s.lot_id), seq = seq, status = status, price_won = price,
        bid_count = bid_count, leader_id = leader, leader_masked = leader_masked,
        end_ms = end_ms, start_ms = num(s.start_ms), server_ms = now_ms,
        min_next_won = min_next(), reserve_met = reserve_met(price, bid_count),
        buy_now_won = (buy_now > 0 and bid_count == 0 and status == "open") and buy_now or cjson.null,
    }
end

local function reject(code)
    return cjson.encode({ok = false, code = code, snapshot = snapshot()})
end

-- A retry of an accepted bid gets its first answer; the same id with another
-- amount is a different request under a reused id.
local receipt_field = fmt(user_id) .. ":" .. client_id
local earlier = redis.call("HGET", receipts_key, receipt_field)
if earlier then
    local receipt = cjson.decode(earlier)
    if receipt.voided then
        return reject("bid_voided")
    end
    if kind ~= receipt.kind or (kind == "bid" and receipt.amount_won ~= amount) then
        return reject("client_id_reused")
    end
    receipt.retry = true
    return cjson.encode({ok = true, receipt = receipt, snapshot = snapshot()})
end

if status == "cancelled" then return reject("lot_cancelled") end
if status == "held" then return reject("lot_held") end
if status ~= "open" or now_ms >= end_ms then return reject("lot_ended") end
if now_ms < num(s.start_ms) then return reject("lot_not_started") end
if bidder_supplier_id ~= 0 and bidder_supplier_id == num(s.supplier_id) then
    return reject("own_lot")
end

local previous_leader = leader
local event_kind = kind
if kind == "buy_now" then
    if buy_now == 0 or bid_count > 0 then
        return reject("buy_now_unavailable")
    end
    amount = buy_now
    price, leader, leader_max, bid_count = buy_now, user_id, buy_now, 1
    leader_masked = masked_name
    status = "closing"
    end_ms = now_ms
elseif kind ~= "bid" then
    return reject("unknown_kind")
else
    -- Plain ASCII digits within 1..MAX_AMOUNT_WON, as rules.parse_amount_won accepts;
    -- tonumber() alone would also take "1e3", "0x10" and "1.5".
    if not string.match(amount_text, "^%d+$") or #amount_text > 11
            or amount < 1 or amount > max_amount then
        return reject("invalid_amount")
    end
    if amount < min_next() then
        return reject("bid_too_low")
    end
    if bid_count == 0 then
        price, leader, leader_max = start_price, user_id, amount
        leader_masked = masked_name
    elseif user_id == leader then
        if amount <= leader_max then
            return reject("max_not_raised")
        end
        leader_max = amount
    elseif amount > leader_max then
        price = math.min(amount, leader_max + increment_for(leader_max))
        leader, leader_max = user_id, amount
        leader_masked = masked_name
    else
        price = math.min(leader_max, amount + increment_for(amount))
    end
    if reserve > 0 and price < reserve then
        price = math.max(price, math.min(leader_max, reserve))
    end
    bid_count = bid_count + 1

    -- Soft close: a bid in the last window moves the end to now + extension,
    -- never past the hard cap.
    -- A cap earlier than the current end stops extensions but never shortens the lot.
    local window_ms = num(s.window_ms)
    if now_ms >= end_ms - window_ms then
        local target = now_ms + num(s.ext_ms)
        local cap_ms = num(s.cap_ms)
        if cap_ms > 0 and target > cap_ms then
            target = cap_ms
        end
        end_ms = math.max(end_ms, target)
    end
end

-- Everything is valid: write.
seq = seq + 1
redis.call("HSET", state_key,
    "status", status, "seq", fmt(seq), "price", fmt(price), "leader", fmt(leader),
    "leader_max", fmt(leader_max), "leader_masked", leader_masked,
    "bid_count", fmt(bid_count), "end_ms", fmt(end_ms))
local best = num(redis.call("HGET", bidders_key, fmt(user_id)))
if amount > best then
    redis.call("HSET", bidders_key, fmt(user_id), fmt(amount))
end
if status == "open" then
    redis.call("ZADD", ends_key, end_ms, s.lot_id)
else
    redis.call("ZADD", ends_key, now_ms, s.lot_id)
end

local receipt = {
    receipt_id = s.lot_id .. "-" .. fmt(seq), lot_id = tonumber(s.lot_id), seq = seq,
    kind = event_kind, amount_won = amount, price_won = price, leading = (leader == user_id),
    end_ms = end_ms, server_ms = now_ms,
}
redis.call("HSET", receipts_key, receipt_field, cjson.encode(receipt))

redis.call("XADD", stream_key, "*",
    "lot", s.lot_id, "seq", fmt(seq), "kind", event_kind, "user", fmt(user_id),
    "client", client_id, "amount", fmt(amount), "price", fmt(price),
    "leader", fmt(leader), "end_ms", fmt(end_ms), "server_ms", fmt(now_ms))

local snap = snapshot()
local event = {
    type = "lot", event = event_kind, bidder_masked = masked_name,
    previous_leader_id = previous_leader,
}
for k, v in pairs(snap) do
    event[k] = v
end
redis.call("PUBLISH", channel, cjson.encode(event))

return cjson.encode({ok = true, receipt = receipt, snapshot = snap})
