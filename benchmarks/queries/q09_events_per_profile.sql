-- title: High-cardinality GROUP BY profile_id over all events: a year of activity per profile
SELECT profile_id,
       count(*) AS events,
       count(DISTINCT event_type) AS event_types,
       sum(amount) AS revenue,
       min(event_time) AS first_seen,
       max(event_time) AS last_seen
FROM events
GROUP BY profile_id;
