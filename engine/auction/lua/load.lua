-- Load a lot's live state from PostgreSQL into Redis, unless it is already there.
-- Called when a lot opens and when Redis came back empty; a lot that is already
-- live is never overwritten, so two loaders racing leave the first one's state.

local state_key    = KEYS[1]
local bidders_key  = KEYS[2]
local ends_key     = KEYS[3]
local receipts_key = KEYS[4]

local lot_id      = ARGV[1]
local end_ms      = ARGV[2]
local status      = ARGV[3]
local bidders     = cjson.decode(ARGV[4])   -- {user_id: max_won} as strings
local receipts    = cjson.decode(ARGV[5])   -- {"user:client": receipt JSON}

if redis.call("EXISTS", state_key) == 1 then
    return 0
end

local args = {}
for i = 6, #ARGV do
    args[#args + 1] = ARGV[i]
end
redis.call("HSET", state_key, unpack(args))
for user, max_won in pairs(bidders) do
    redis.call("HSET", bidders_key, user, max_won)
end
for field, receipt in pairs(receipts) do
    redis.call("HSET", receipts_key, field, receipt)
end
if status == "open" or status == "closing" then
    redis.call("ZADD", ends_key, tonumber(end_ms), lot_id)
end
return 1
