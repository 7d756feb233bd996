-- name: events-by-type-and-streamer
-- version: 2
-- answers: How many events of each type each streamer had, recounted from the raw events.
-- parameters: since, until, streamer
SELECT COUNT(*) AS count_all, event_type, COALESCE(streamer_name, '') AS streamer_name
FROM events
WHERE (CAST(:since AS VARCHAR(10)) IS NULL
       OR SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10) >= :since)
  AND (CAST(:until AS VARCHAR(10)) IS NULL
       OR SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10) <= :until)
  AND (CAST(:streamer AS VARCHAR(40)) IS NULL OR streamer_name = :streamer)
GROUP BY event_type, COALESCE(streamer_name, '')
ORDER BY streamer_name, count_all DESC, event_type
