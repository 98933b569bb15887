-- title: Overlap of two segments: fashion buyers (180 days) and e-mail openers (30 days)
WITH buyers AS (
    SELECT DISTINCT profile_id FROM events
    WHERE event_date > DATE '2026-05-05'
      AND event_type = 'purchase' AND category = 'fashion' AND profile_id IS NOT NULL
),
openers AS (
    SELECT DISTINCT profile_id FROM events
    WHERE event_date > DATE '2026-10-02'
      AND event_type = 'email_open' AND profile_id IS NOT NULL
)
SELECT count(b.profile_id) AS buyers,
       count(o.profile_id) AS openers,
       count(*) FILTER (WHERE b.profile_id IS NOT NULL AND o.profile_id IS NOT NULL) AS both_segments,
       count(*) AS either_segment
FROM buyers b
FULL OUTER JOIN openers o ON b.profile_id = o.profile_id;
