"""Live English auctions with proxy bidding: rules, Lua scripts and the Redis wrapper."""
