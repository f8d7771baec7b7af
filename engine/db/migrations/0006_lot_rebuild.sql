-- When a lot's live state was first put into Redis. A lot that was live before and
-- is missing from Redis now was lost there, and is rebuilt only after every web
-- process had the time to save its acknowledged sequence numbers.
ALTER TABLE lots ADD COLUMN live_loaded_at timestamptz;
