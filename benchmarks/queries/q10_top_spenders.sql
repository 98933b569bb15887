-- title: Top-N: the 100 biggest spenders of the last 90 days, with their profile
SELECT p.profile_id, p.first_name, p.city, p.country, s.revenue, s.orders
FROM (
    SELECT profile_id, sum(amount) AS revenue, count(*) AS orders
    FROM events
    WHERE event_date > DATE '2026-08-03' AND event_type = 'purchase' AND profile_id IS NOT NULL
    GROUP BY profile_id
    ORDER BY revenue DESC, profile_id
    LIMIT 100
) s
JOIN profiles p ON p.profile_id = s.profile_id
ORDER BY s.revenue DESC, p.profile_id;
