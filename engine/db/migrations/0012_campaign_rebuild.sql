-- When a campaign's live state was first put into Redis. A campaign that was live
-- before and is missing from Redis now was lost there, and is rebuilt only after
-- every web process had the time to save its acknowledged sequence numbers.
ALTER TABLE campaigns ADD COLUMN live_loaded_at timestamptz;
