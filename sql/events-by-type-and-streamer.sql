-- name: events-by-type-and-streamer
-- version: 1
-- answers: how many events of each type each streamer has, from the raw events
-- parameters: none
SELECT COUNT(*) AS count_all, event_type, streamer_name FROM events GROUP BY event_type, streamer_name
