-- title: Appetence per channel: appetence_score per profile and channel over 90 days, engaged profiles per channel
-- duckdb: appetence_score is a DuckDB macro over sum() (queries/duckdb_macros.sql)
WITH scores AS (
    SELECT profile_id, channel,
           appetence_score(
               event_type IN ('email_open', 'email_click', 'sms_click', 'push_open', 'ad_click'),
               event_time, TIMESTAMP '2026-11-02 00:00:00', 30) AS appetence
    FROM events
    WHERE event_date > DATE '2026-08-03'
      AND channel IN ('email', 'sms', 'push', 'ads')
      AND profile_id IS NOT NULL
    GROUP BY profile_id, channel
)
SELECT channel,
       count(*) AS profiles,
       avg(appetence) AS avg_appetence,
       count(*) FILTER (WHERE appetence >= 0.5) AS engaged
FROM scores
GROUP BY channel;
