-- A staff or worker action on a live campaign:
--   settle   ARGV[3] = final status (succeeded, failed, held, cancelled) after
--            PostgreSQL committed the close or the cancel; no new sequence number.
--            Takes the campaign off the deadlines set.
--   cancel   (no argument) staff cancel an open campaign: one "cancel" event. The
--            campaign stays in the deadlines set, due at once, until a settle: the
--            worker's closer then records the cancel in PostgreSQL (refunds, mails)
--            even when the canceller dies right after this script.
--   release  ARGV[3] = "user_id:units" or "user_id:units:release_key": an up-front
--            payment hold expired, so up to that many of the member's units are
--            released: one "hold_expired" event. Accepted only while the campaign is
--            open and before its deadline. With a release key (e.g. "hold:42") the
--            release happens once: a repeat returns {ok=true, retry=true}, and the key
--            is stored as the event's client id.
-- Returns {ok=true, seq=..., snapshot=...} or {ok=false, code=...}; not_open also
-- carries the campaign's status and seq.

local state_key     = KEYS[1]
local pledges_key   = KEYS[2]
local stream_key    = KEYS[3]
local deadlines_key = KEYS[4]
local receipts_key  = KEYS[5]

local channel       = ARGV[1]
local action        = ARGV[2]
local argument      = ARGV[3] or ""
local actor_id      = ARGV[4] or "0"

local s = gb_read(state_key)
if s == nil then
    return cjson.encode({ok = false, code = "campaign_not_loaded"})
end
local now_ms = gb_now_ms()

local final_statuses = {succeeded = true, failed = true, held = true, cancelled = true}

if action == "settle" then
    if not final_statuses[argument] then
        return cjson.encode({ok = false, code = "invalid_status"})
    end
    -- A cancelled campaign may still settle as held, when PostgreSQL held it.
    if s.status ~= "closing" and s.status ~= "cancelled" and s.status ~= argument then
        return cjson.encode({ok = false, code = "not_closing", status = s.status})
    end
    s.status = argument
    redis.call("HSET", state_key, "status", argument)
    redis.call("ZREM", deadlines_key, s.campaign_id)
    local snapshot = gb_snapshot(s, now_ms)
    gb_publish(channel, "settled", snapshot, 0, cjson.null, cjson.null)
    return cjson.encode({ok = true, seq = gb_num(s.seq), snapshot = snapshot})
end

if s.status ~= "open" then
    return cjson.encode({ok = false, code = "not_open", status = s.status, seq = gb_num(s.seq)})
end

local kind, user_field, units_text, delta_text = action, actor_id, "", ""
local client_text = ""
local published_user, published_units, published_delta = tonumber(actor_id) or 0, cjson.null, cjson.null
if action == "cancel" then
    s.status = "cancelled"
    redis.call("ZADD", deadlines_key, now_ms, s.campaign_id)
elseif action == "release" then
    if now_ms >= gb_num(s.deadline_ms) then
        return cjson.encode({ok = false, code = "campaign_closed"})
    end
    local user_text, release_text, release_key = string.match(argument, "^(%d+):(%d+):?([%w:_%-]*)$")
    if user_text == nil or #release_text > 6 or tonumber(release_text) < 1 or #release_key > 64 then
        return cjson.encode({ok = false, code = "invalid_units"})
    end
    -- A releaser that died after this script ran, before it recorded the release,
    -- calls again with the same key, so the units must not be released twice.
    local receipt_field = user_text .. ":" .. release_key
    if release_key ~= "" then
        local earlier = redis.call("HGET", receipts_key, receipt_field)
        if earlier then
            return cjson.encode({ok = true, retry = true, seq = cjson.decode(earlier).seq,
                snapshot = gb_snapshot(s, now_ms)})
        end
    end
    local previous = gb_num(redis.call("HGET", pledges_key, user_text))
    if previous == 0 then
        return cjson.encode({ok = false, code = "no_pledge"})
    end
    local released = math.min(previous, tonumber(release_text))
    local units = previous - released
    if units == 0 then
        redis.call("HDEL", pledges_key, user_text)
        s.participants = gb_fmt(gb_num(s.participants) - 1)
    else
        redis.call("HSET", pledges_key, user_text, gb_fmt(units))
    end
    s.committed = gb_fmt(gb_num(s.committed) - released)
    kind, user_field, units_text, delta_text = "hold_expired", user_text, gb_fmt(units), gb_fmt(-released)
    client_text = release_key
    if release_key ~= "" then
        redis.call("HSET", receipts_key, receipt_field,
            cjson.encode({seq = gb_num(s.seq) + 1, units = units, delta_units = -released}))
    end
    published_user, published_units, published_delta = tonumber(user_text), units, -released
    gb_schedule(deadlines_key, s, now_ms)
else
    return cjson.encode({ok = false, code = "unknown_action"})
end

s.seq = gb_fmt(gb_num(s.seq) + 1)
redis.call("HSET", state_key, "status", s.status, "seq", s.seq,
    "committed", s.committed, "participants", s.participants)
redis.call("XADD", stream_key, "*",
    "campaign", s.campaign_id, "seq", s.seq, "kind", kind, "user", user_field, "client", client_text,
    "units", units_text, "delta", delta_text, "committed", s.committed,
    "participants", s.participants, "server_ms", gb_fmt(now_ms))
local snapshot = gb_snapshot(s, now_ms)
gb_publish(channel, kind, snapshot, published_user, published_units, published_delta)
return cjson.encode({ok = true, seq = gb_num(s.seq), snapshot = snapshot})
