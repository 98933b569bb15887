-- title: Cart abandoners: added to cart in the last 7 days and no purchase since
SELECT profile_id,
       max(event_time) FILTER (WHERE event_type = 'add_to_cart') AS last_cart
FROM events
WHERE event_date > DATE '2026-10-25'
  AND event_type IN ('add_to_cart', 'purchase')
  AND profile_id IS NOT NULL
GROUP BY profile_id
HAVING max(event_time) FILTER (WHERE event_type = 'add_to_cart') IS NOT NULL
   AND (max(event_time) FILTER (WHERE event_type = 'purchase') IS NULL
        OR max(event_time) FILTER (WHERE event_type = 'add_to_cart')
           > max(event_time) FILTER (WHERE event_type = 'purchase'));
