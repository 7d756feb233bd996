-- name: events-by-streamer
-- version: 1
-- answers: how many events each streamer has, counted from the raw events
-- parameters: none
SELECT COUNT(*) AS count_all, streamer_name FROM events GROUP BY streamer_name
