-- name: events-by-type-and-streamer
-- version: 2
-- answers: How many events of each type each streamer had, from the daily rollups.
-- parameters: since, until, streamer
SELECT CAST(SUM(count) AS BIGINT) AS count_all, event_type, streamer_name
FROM event_counts
WHERE (CAST(:since AS VARCHAR(10)) IS NULL OR day >= :since)
  AND (CAST(:until AS VARCHAR(10)) IS NULL OR day <= :until)
  AND (CAST(:streamer AS VARCHAR(40)) IS NULL OR streamer_name = :streamer)
GROUP BY event_type, streamer_name
ORDER BY streamer_name, count_all DESC, event_type
