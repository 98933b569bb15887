-- title: Behavioural window: viewed electronics in the last 30 days and did not buy (e-mail opt-ins)
SELECT p.profile_id, p.email
FROM profiles p
WHERE p.consent_email
  AND EXISTS (
      SELECT 1 FROM events v
      WHERE v.profile_id = p.profile_id
        AND v.event_date > DATE '2026-10-02'
        AND v.event_type = 'product_view'
        AND v.category = 'electronics')
  AND NOT EXISTS (
      SELECT 1 FROM events b
      WHERE b.profile_id = p.profile_id
        AND b.event_date > DATE '2026-10-02'
        AND b.event_type = 'purchase');
