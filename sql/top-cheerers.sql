-- name: top-cheerers
-- version: 1
-- answers: Who cheered the most bits for one streamer (anonymous cheers count together), from the raw channel.cheer events.
-- parameters: streamer (required), since, until
SELECT MAX(COALESCE(user_name, 'Anonymous')) AS supporter,
       CAST(SUM(COALESCE(amount, 0)) AS BIGINT) AS bits,
       COUNT(*) AS cheers
FROM events
WHERE streamer_name = :streamer
  AND event_type = 'channel.cheer'
  AND (CAST(:since AS VARCHAR(10)) IS NULL
       OR SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10) >= :since)
  AND (CAST(:until AS VARCHAR(10)) IS NULL
       OR SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10) <= :until)
GROUP BY COALESCE(user_id, '')
ORDER BY bits DESC, supporter
LIMIT 10
