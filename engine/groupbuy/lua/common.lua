-- Shared by every campaign script: live.py prepends this file to each script's
-- source. It reads a campaign's state hash, takes the time from Redis and builds
-- the snapshot that every reply and every published event carries. The rules
-- match engine/groupbuy/rules.py.

local function gb_num(value)
    return tonumber(value) or 0
end

local function gb_fmt(value)
    return string.format("%d", value)
end

local function gb_now_ms()
    local time = redis.call("TIME")
    return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- The campaign's state hash as a table of strings, or nil when it is not loaded.
local function gb_read(state_key)
    local fields = redis.call("HGETALL", state_key)
    if #fields == 0 then
        return nil
    end
    local s = {}
    for i = 1, #fields, 2 do
        s[fields[i]] = fields[i + 1]
    end
    return s
end

-- Tiers are stored as "min_units:unit_price,..." with thresholds ascending.
local function gb_tiers(s)
    local tiers = {}
    for threshold, price in string.gmatch(s.tiers or "", "(%d+):(%d+)") do
        tiers[#tiers + 1] = {tonumber(threshold), tonumber(price)}
    end
    return tiers
end

local function gb_price(s, committed)
    local price = gb_num(s.list_price)
    for _, tier in ipairs(gb_tiers(s)) do
        if committed >= tier[1] then
            price = tier[2]
        else
            break
        end
    end
    return price
end

local function gb_snapshot(s, now_ms)
    local committed = gb_num(s.committed)
    local participants = gb_num(s.participants)
    local cap = gb_num(s.cap)
    local min_total = gb_num(s.min_total)
    local min_buyers = gb_num(s.min_buyers)
    local next_units, next_price, to_next = cjson.null, cjson.null, cjson.null
    for _, tier in ipairs(gb_tiers(s)) do
        if tier[1] > committed then
            next_units, next_price, to_next = tier[1], tier[2], tier[1] - committed
            break
        end
    end
    local minimum_met = committed >= min_total and (min_buyers == 0 or participants >= min_buyers)
    return {
        campaign_id = tonumber(s.campaign_id), seq = gb_num(s.seq), status = s.status,
        committed_units = committed, participants = participants,
        unit_price_won = gb_price(s, committed),
        next_tier_units = next_units, next_tier_price_won = next_price, units_to_next_tier = to_next,
        min_total_units = min_total, min_buyers = (min_buyers > 0) and min_buyers or cjson.null,
        units_to_minimum = math.max(0, min_total - committed), minimum_met = minimum_met,
        stock_cap_units = cap, stock_left = math.max(0, cap - committed), sold_out = committed >= cap,
        per_member_limit = gb_num(s.limit), close_when_sold_out = s.sold_out_close == "1",
        deadline_ms = gb_num(s.deadline_ms), start_ms = gb_num(s.start_ms), server_ms = now_ms,
        at_most_price_won = gb_price(s, min_total), list_price_won = gb_num(s.list_price),
    }
end

-- Publish one change for the websocket hubs. `user_id` is the member concerned
-- (0 for none); hubs use it for private notices and never forward it to browsers.
local function gb_publish(channel, event, snapshot, user_id, units, delta)
    local message = {type = "campaign", event = event, user_id = user_id, units = units, delta_units = delta}
    for k, v in pairs(snapshot) do
        message[k] = v
    end
    redis.call("PUBLISH", channel, cjson.encode(message))
end

-- The deadlines set scores an open campaign by its deadline, or by now once it is
-- sold out with "close when sold out" on, so the closer finds it due at once.
local function gb_schedule(deadlines_key, s, now_ms)
    if s.sold_out_close == "1" and gb_num(s.committed) >= gb_num(s.cap) then
        redis.call("ZADD", deadlines_key, now_ms, s.campaign_id)
    else
        redis.call("ZADD", deadlines_key, gb_num(s.deadline_ms), s.campaign_id)
    end
end

