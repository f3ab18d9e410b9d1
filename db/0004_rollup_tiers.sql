-- Hub schema, version 4: hourly and daily rollups beside readings_1m, for long chart ranges.
-- Applied by hub.storage.migrations.

-- Same columns as readings_1m; bucket is the start of the UTC hour or day. Each bucket is
-- recomputed from the tier below (an hour from its minutes of readings_1m, a day from its hours
-- of readings_1h), never incremented, so a replay leaves it exact and `iot-hub rollup rebuild
-- --tier 1h|1d` can make it again. count is the readings the bucket covers, avg is weighted
-- by it.
CREATE TABLE readings_1h (LIKE readings_1m INCLUDING ALL);
CREATE TABLE readings_1d (LIKE readings_1m INCLUDING ALL);

-- A tier's rebuild reads the tier below by bucket range, and retention deletes rows whose bucket
-- is older than the tier's HUB_ROLLUP_RETENTION_DAYS: both need to find a time range without
-- scanning the table. Buckets are written in time order, so each index grows at its right edge
-- (one insert per series and bucket, small beside the writes to readings). BRIN was tried and
-- dropped: its ranges are only as narrow as their summaries, which matched half of the table
-- for a one-day range in the benchmark (bench/rollup_query.py).
CREATE INDEX readings_1m_bucket_idx ON readings_1m (bucket);
CREATE INDEX readings_1h_bucket_idx ON readings_1h (bucket);
CREATE INDEX readings_1d_bucket_idx ON readings_1d (bucket);

-- The hours and days of the minutes already there, so long charts cover the past at once
-- (the worker keeps them up to date from here on). Each bucket's avg is weighted by count and
-- its last is the value at the newest last_ts, exactly as hub/storage/postgres.py recomputes.
INSERT INTO readings_1h (device_id, metric, bucket, count, min, max, avg, last, last_ts)
SELECT device_id, metric, date_bin('1 hour', bucket, TIMESTAMPTZ '1970-01-01 00:00:00+00'),
       sum(count)::integer, min(min), max(max),
       sum(avg * count) / sum(count), (array_agg(last ORDER BY last_ts DESC))[1], max(last_ts)
FROM readings_1m
GROUP BY 1, 2, 3;

INSERT INTO readings_1d (device_id, metric, bucket, count, min, max, avg, last, last_ts)
SELECT device_id, metric, date_bin('1 day', bucket, TIMESTAMPTZ '1970-01-01 00:00:00+00'),
       sum(count)::integer, min(min), max(max), sum(avg * count) / sum(count),
       (array_agg(last ORDER BY last_ts DESC))[1], max(last_ts)
FROM readings_1h
GROUP BY 1, 2, 3;
