-- name: top-gifters
-- version: 1
-- answers: Who gifted one streamer the most subs (anonymous gifts count together), from the raw events.
-- parameters: streamer (required), since, until
SELECT MAX(COALESCE(user_name, 'Anonymous')) AS supporter,
       CAST(SUM(COALESCE(amount, 0)) AS BIGINT) AS gifted_subs,
       COUNT(*) AS gifts
FROM events
WHERE streamer_name = :streamer
  AND event_type = 'channel.subscription.gift'
  AND (CAST(:since AS VARCHAR(10)) IS NULL
       OR SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10) >= :since)
  AND (CAST(:until AS VARCHAR(10)) IS NULL
       OR SUBSTR(CAST(occurred_at AS VARCHAR(40)), 1, 10) <= :until)
GROUP BY COALESCE(user_id, '')
ORDER BY gifted_subs DESC, supporter
LIMIT 10
