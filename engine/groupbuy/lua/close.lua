-- Begin closing a due campaign: open -> closing, one "close" event appended to the
-- ledger stream with the campaign's last sequence number. A campaign is due when
-- its deadline has passed, or when it is sold out with "close when sold out" on.
-- Returns {ok=true, state=..., pledges=..., snapshot=...}, or an error code when it
-- is not due; a campaign already closing returns its state again, so a closer that
-- died after this step can finish the job. A cancelled campaign returns not_open with
-- the seq of its cancel event and stays in the deadlines set: the settle that follows
-- PostgreSQL's record of the cancel takes it off.

local state_key     = KEYS[1]
local pledges_key   = KEYS[2]
local stream_key    = KEYS[3]
local deadlines_key = KEYS[4]

local channel       = ARGV[1]

local s = gb_read(state_key)
if s == nil then
    return cjson.encode({ok = false, code = "campaign_not_loaded"})
end
local now_ms = gb_now_ms()

if s.status == "open" then
    local due = now_ms >= gb_num(s.deadline_ms)
        or (s.sold_out_close == "1" and gb_num(s.committed) >= gb_num(s.cap))
    if not due then
        gb_schedule(deadlines_key, s, now_ms)
        return cjson.encode({ok = false, code = "not_due", deadline_ms = gb_num(s.deadline_ms)})
    end
    s.seq = gb_fmt(gb_num(s.seq) + 1)
    s.status = "closing"
    redis.call("HSET", state_key, "status", "closing", "seq", s.seq)
    redis.call("XADD", stream_key, "*",
        "campaign", s.campaign_id, "seq", s.seq, "kind", "close", "user", "0", "client", "",
        "units", "", "delta", "", "committed", s.committed, "participants", s.participants,
        "server_ms", gb_fmt(now_ms))
    gb_publish(channel, "close", gb_snapshot(s, now_ms), 0, cjson.null, cjson.null)
elseif s.status == "cancelled" then
    return cjson.encode({ok = false, code = "not_open", status = s.status, seq = gb_num(s.seq)})
elseif s.status ~= "closing" then
    redis.call("ZREM", deadlines_key, s.campaign_id)
    return cjson.encode({ok = false, code = "not_open", status = s.status})
end

local raw = redis.call("HGETALL", pledges_key)
local pledges = {}
for i = 1, #raw, 2 do
    pledges[raw[i]] = tonumber(raw[i + 1])
end
s.server_ms = now_ms
return cjson.encode({ok = true, state = s, pledges = pledges, snapshot = gb_snapshot(s, now_ms)})
