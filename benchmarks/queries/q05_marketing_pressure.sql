-- title: Marketing pressure: profiles sent 3 or more messages in the last 7 days, per channel
SELECT profile_id,
       count(*) AS messages,
       count(*) FILTER (WHERE channel = 'email') AS emails,
       count(*) FILTER (WHERE channel = 'sms') AS sms,
       count(*) FILTER (WHERE channel = 'push') AS pushes
FROM events
WHERE event_date > DATE '2026-10-25'
  AND event_type IN ('email_sent', 'sms_sent', 'push_sent')
  AND profile_id IS NOT NULL
GROUP BY profile_id
HAVING count(*) >= 3;
