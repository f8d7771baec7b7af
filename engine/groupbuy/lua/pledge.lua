-- Set one member's pledge on a campaign atomically: validate everything, then write.
-- ARGV[3] is the member's new total in units: a first pledge, a change and a
-- cancellation (0) are the same request. ARGV[6], when not empty, is the member's
-- total the caller expects (compare-and-set): a caller that computed the new total
-- from a pledge it read gets `pledge_changed` if the pledge changed since, and
-- computes again from `units` in the reply. The rules match engine/groupbuy/rules.py.
--
-- Returns a JSON object: {ok=true, receipt=..., snapshot=...} or
-- {ok=false, code=..., snapshot=..., units_left=..., units_allowed=..., units=...}.
-- Rejections write nothing.

local state_key     = KEYS[1]
local pledges_key   = KEYS[2]
local receipts_key  = KEYS[3]
local stream_key    = KEYS[4]
local deadlines_key = KEYS[5]

local user_id       = tonumber(ARGV[1])
local client_id     = ARGV[2]
local units_text    = ARGV[3]
local pledger_supplier_id = tonumber(ARGV[4])  -- 0 when the pledger is no supplier
local channel       = ARGV[5]
local expected_text = ARGV[6] or ""  -- "" when the caller sets the total unconditionally

local max_units     = 100000  -- rules.MAX_UNITS

local s = gb_read(state_key)
if s == nil then
    return cjson.encode({ok = false, code = "campaign_not_loaded"})
end
local now_ms = gb_now_ms()

local committed = gb_num(s.committed)
local cap = gb_num(s.cap)
local limit = gb_num(s.limit)
local user_field = gb_fmt(user_id)
local previous = gb_num(redis.call("HGET", pledges_key, user_field))
local left = math.max(0, cap - committed)

local function reject(code)
    return cjson.encode({
        ok = false, code = code, snapshot = gb_snapshot(s, now_ms), units_left = left,
        units_allowed = math.min(limit, previous + left), units = previous,
    })
end

-- Plain ASCII digits within 0..MAX_UNITS, as rules.parse_units accepts, else nil;
-- tonumber() alone would also take "1e3", "0x10" and "1.5".
local function parse_units(text)
    if string.match(text, "^%d+$") and #text <= 6 then
        local value = tonumber(text)
        if value <= max_units then
            return value
        end
    end
    return nil
end

local units = parse_units(units_text)

-- A retry of an accepted pledge gets its first answer; the same client id with
-- another total is a different request under a reused id. This comes before the
-- expected-total check because the accepted pledge has itself changed the total.
local receipt_field = user_field .. ":" .. client_id
local earlier = redis.call("HGET", receipts_key, receipt_field)
if earlier then
    local receipt = cjson.decode(earlier)
    if units == nil or receipt.units ~= units then
        return reject("client_id_reused")
    end
    receipt.retry = true
    return cjson.encode({ok = true, receipt = receipt, snapshot = gb_snapshot(s, now_ms)})
end

if s.status == "cancelled" then return reject("campaign_cancelled") end
if s.status == "held" then return reject("campaign_held") end
-- A pledge counts only when it arrives strictly before the deadline.
if s.status ~= "open" or now_ms >= gb_num(s.deadline_ms) then return reject("campaign_closed") end
if now_ms < gb_num(s.start_ms) then return reject("campaign_not_started") end
if pledger_supplier_id ~= 0 and pledger_supplier_id == gb_num(s.supplier_id) then
    return reject("own_goods")
end
if units == nil then return reject("invalid_units") end
if expected_text ~= "" then
    local expected = parse_units(expected_text)
    if expected == nil then return reject("invalid_units") end
    if expected ~= previous then return reject("pledge_changed") end
end
if units == previous then
    if units == 0 then
        return reject("no_pledge")
    end
    return reject("pledge_unchanged")
end
if units > limit then return reject("over_member_limit") end
local delta = units - previous
if delta > 0 and left == 0 then return reject("sold_out") end
-- A pledge that does not fit is rejected whole.
if delta > left then return reject("over_stock") end

-- Everything is valid: write.
local participants = gb_num(s.participants)
if previous == 0 then
    participants = participants + 1
elseif units == 0 then
    participants = participants - 1
end
committed = committed + delta
local seq = gb_num(s.seq) + 1
s.seq, s.committed, s.participants = gb_fmt(seq), gb_fmt(committed), gb_fmt(participants)
redis.call("HSET", state_key, "seq", s.seq, "committed", s.committed, "participants", s.participants)
if units == 0 then
    redis.call("HDEL", pledges_key, user_field)
else
    redis.call("HSET", pledges_key, user_field, gb_fmt(units))
end
gb_schedule(deadlines_key, s, now_ms)

local receipt = {
    receipt_id = s.campaign_id .. "-" .. s.seq, campaign_id = tonumber(s.campaign_id), seq = seq,
    units = units, previous_units = previous, delta_units = delta, committed_units = committed,
    unit_price_won = gb_price(s, committed), server_ms = now_ms,
}
redis.call("HSET", receipts_key, receipt_field, cjson.encode(receipt))

redis.call("XADD", stream_key, "*",
    "campaign", s.campaign_id, "seq", s.seq, "kind", "pledge", "user", user_field,
    "client", client_id, "units", gb_fmt(units), "delta", gb_fmt(delta),
    "committed", s.committed, "participants", s.participants, "server_ms", gb_fmt(now_ms))

local snapshot = gb_snapshot(s, now_ms)
local event = "change"
if previous == 0 then
    event = "pledge"
elseif units == 0 then
    event = "cancel"
end
gb_publish(channel, event, snapshot, user_id, units, delta)

return cjson.encode({ok = true, receipt = receipt, snapshot = snapshot})
