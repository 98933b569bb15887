-- title: Audience counts: opt-ins and 30-day active profiles per country
SELECT p.country,
       count(*) AS profiles,
       count(*) FILTER (WHERE p.consent_email) AS email_optin,
       count(*) FILTER (WHERE p.consent_sms) AS sms_optin,
       count(*) FILTER (WHERE p.consent_push) AS push_optin,
       count(a.profile_id) AS active_30d,
       count(a.profile_id) FILTER (WHERE p.consent_email) AS active_email_optin
FROM profiles p
LEFT JOIN (
    SELECT DISTINCT profile_id FROM events
    WHERE event_date > DATE '2026-10-02' AND profile_id IS NOT NULL
) a ON a.profile_id = p.profile_id
GROUP BY p.country;
