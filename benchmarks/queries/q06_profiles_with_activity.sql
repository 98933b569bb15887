-- title: Profiles joined with aggregated events: 90-day activity and revenue of reachable French profiles
SELECT p.profile_id, p.city, p.birth_year,
       a.events, a.purchases, a.revenue, a.last_seen
FROM profiles p
JOIN (
    SELECT profile_id,
           count(*) AS events,
           count(*) FILTER (WHERE event_type = 'purchase') AS purchases,
           sum(amount) AS revenue,
           max(event_time) AS last_seen
    FROM events
    WHERE event_date > DATE '2026-08-03' AND profile_id IS NOT NULL
    GROUP BY profile_id
) a ON a.profile_id = p.profile_id
WHERE p.country = 'FR' AND (p.consent_email OR p.consent_sms);
