-- name: events-by-streamer
-- version: 2
-- answers: How many events each streamer had, from the daily rollups.
-- parameters: since, until, streamer
SELECT CAST(SUM(count) AS BIGINT) AS count_all, streamer_name
FROM event_counts
WHERE (CAST(:since AS VARCHAR(10)) IS NULL OR day >= :since)
  AND (CAST(:until AS VARCHAR(10)) IS NULL OR day <= :until)
  AND (CAST(:streamer AS VARCHAR(40)) IS NULL OR streamer_name = :streamer)
GROUP BY streamer_name
ORDER BY count_all DESC, streamer_name
