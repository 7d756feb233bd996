-- name: follows-by-day
-- version: 1
-- answers: How many new followers one streamer got per UTC day, and the running total over the range, recounted from the raw events.
-- parameters: streamer (required), since, until
SELECT day, follows, CAST(SUM(follows) OVER (ORDER BY day) AS BIGINT) AS running_total
FROM (
  SELECT SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10) AS day, COUNT(*) AS follows
  FROM events
  WHERE streamer_name = :streamer
    AND event_type = 'channel.follow'
    AND (CAST(:since AS VARCHAR(10)) IS NULL
         OR SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10) >= :since)
    AND (CAST(:until AS VARCHAR(10)) IS NULL
         OR SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10) <= :until)
  GROUP BY SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10)
) AS daily
ORDER BY day
