-- name: events-by-day
-- version: 1
-- answers: How many events of each type one streamer had per UTC day, recounted from the raw events.
-- parameters: streamer (required), since, until
SELECT SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10) AS day, event_type,
       COUNT(*) AS count_all
FROM events
WHERE streamer_name = :streamer
  AND (CAST(:since AS VARCHAR(10)) IS NULL
       OR SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10) >= :since)
  AND (CAST(:until AS VARCHAR(10)) IS NULL
       OR SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10) <= :until)
GROUP BY SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10), event_type
ORDER BY day, event_type
