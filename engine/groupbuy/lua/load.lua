-- Load a campaign's live state from PostgreSQL into Redis, unless it is already
-- there. Called when a campaign is created and when Redis came back empty; a
-- campaign that is already live is never overwritten, so two loaders racing leave
-- the first one's state.

local state_key     = KEYS[1]
local pledges_key   = KEYS[2]
local receipts_key  = KEYS[3]
local deadlines_key = KEYS[4]

local pledges       = cjson.decode(ARGV[1])   -- {user_id: units} as strings
local receipts      = cjson.decode(ARGV[2])   -- {"user:client": receipt JSON}

if redis.call("EXISTS", state_key) == 1 then
    return 0
end

local args = {}
for i = 3, #ARGV do
    args[#args + 1] = ARGV[i]
end
redis.call("HSET", state_key, unpack(args))
for user, units in pairs(pledges) do
    redis.call("HSET", pledges_key, user, units)
end
for field, receipt in pairs(receipts) do
    redis.call("HSET", receipts_key, field, receipt)
end
local s = gb_read(state_key)
if s.status == "open" or s.status == "closing" then
    gb_schedule(deadlines_key, s, gb_now_ms())
elseif s.status == "cancelled" then
    -- Due at once, so the closer records a cancel PostgreSQL may not have settled yet.
    redis.call("ZADD", deadlines_key, gb_now_ms(), s.campaign_id)
end
return 1
