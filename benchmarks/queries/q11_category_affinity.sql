-- title: Category affinity: each profile's favourite category (90 days of product views), profiles per category
WITH per_category AS (
    SELECT profile_id, category, count(*) AS views
    FROM events
    WHERE event_date > DATE '2026-08-03' AND event_type = 'product_view' AND profile_id IS NOT NULL
    GROUP BY profile_id, category
),
ranked AS (
    SELECT profile_id, category,
           ROW_NUMBER() OVER (PARTITION BY profile_id ORDER BY views DESC, category) AS rn
    FROM per_category
)
SELECT category, count(*) AS profiles
FROM ranked
WHERE rn = 1
GROUP BY category;
