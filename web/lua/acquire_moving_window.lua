-- Count one hit against a moving-window rate limit, as the `limits` library's
-- moving window does. The list at KEYS[1] contains hit times (ms, newest first),
-- at most `limit` of them. A hit is allowed unless the limit-th newest hit is
-- still inside the window.
--
-- Returns {1, 0} when the hit is counted, or {0, retry_after_ms} when the limit is
-- used up; a rejected hit writes nothing.

local key       = KEYS[1]

local limit     = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])

-- Redis's clock, so every web process counts against the same time.
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local oldest = redis.call('LINDEX', key, limit - 1)
if oldest then
    local oldest_ms = tonumber(oldest)
    if now_ms - oldest_ms <= window_ms then
        return {0, oldest_ms + window_ms - now_ms}
    end
end

redis.call('LPUSH', key, now_ms)
redis.call('LTRIM', key, 0, limit - 1)
redis.call('PEXPIRE', key, window_ms)
return {1, 0}
