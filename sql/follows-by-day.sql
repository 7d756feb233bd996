-- name: follows-by-day
-- version: 1
-- answers: How many new followers one streamer got per UTC day, and the running total over the range, from the daily rollups.
-- parameters: streamer (required), since, until
SELECT day, follows, CAST(SUM(follows) OVER (ORDER BY day) AS BIGINT) AS running_total
FROM (
  SELECT day, CAST(SUM(count) AS BIGINT) AS follows
  FROM event_counts
  WHERE streamer_name = :streamer
    AND event_type = 'channel.follow'
    AND (CAST(:since AS VARCHAR(10)) IS NULL OR day >= :since)
    AND (CAST(:until AS VARCHAR(10)) IS NULL OR day <= :until)
  GROUP BY day
) AS daily
ORDER BY day
