-- Size learning: a trace whose observation page came back larger than the big-response
-- threshold is held as big from then on (fetched with nothing else in flight, one observation
-- per page), and a restart knows it.
ALTER TABLE traces ADD COLUMN largest_page_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE traces ADD COLUMN big_since TEXT;
