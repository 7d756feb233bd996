-- name: events-by-streamer
-- version: 2
-- answers: How many events each streamer had, recounted from the raw events.
-- parameters: since, until, streamer
SELECT COUNT(*) AS count_all, COALESCE(streamer_name, '') AS streamer_name
FROM events
WHERE (CAST(:since AS VARCHAR(10)) IS NULL
       OR SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10) >= :since)
  AND (CAST(:until AS VARCHAR(10)) IS NULL
       OR SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10) <= :until)
  AND (CAST(:streamer AS VARCHAR(40)) IS NULL OR streamer_name = :streamer)
GROUP BY COALESCE(streamer_name, '')
ORDER BY count_all DESC, streamer_name
