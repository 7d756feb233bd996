-- name: events-by-day
-- version: 1
-- answers: How many events of each type one streamer had per UTC day, from the daily rollups.
-- parameters: streamer (required), since, until
SELECT day, event_type, CAST(SUM(count) AS BIGINT) AS count_all
FROM event_counts
WHERE streamer_name = :streamer
  AND (CAST(:since AS VARCHAR(10)) IS NULL OR day >= :since)
  AND (CAST(:until AS VARCHAR(10)) IS NULL OR day <= :until)
GROUP BY day, event_type
ORDER BY day, event_type
