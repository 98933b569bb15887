-- One row per profile: R, F and M scores from 1 to 5, and the RFM segment.
-- `purchases(profile_id, event_time, amount)` holds one row per purchase event.
WITH per_profile AS (
    SELECT profile_id,
           max(event_time) AS last_purchase,
           count(*)        AS frequency,
           sum(amount)     AS monetary
    FROM purchases
    GROUP BY profile_id
),
scored AS (
    SELECT profile_id, last_purchase, frequency, monetary,
           -- R is reversed: the oldest last purchase gets 1, the most recent gets 5
           -- (ordering by days since the last purchase would need DESC instead).
           -- Every window ends with profile_id: NTILE needs a total order, or tied
           -- profiles could land in different tiles from one run to the next.
           NTILE(5) OVER (ORDER BY last_purchase ASC, profile_id ASC) AS r_score,
           NTILE(5) OVER (ORDER BY frequency ASC, profile_id ASC)     AS f_score,
           NTILE(5) OVER (ORDER BY monetary ASC, profile_id ASC)      AS m_score
    FROM per_profile
)
SELECT profile_id, r_score, f_score, m_score,
       rfm_segment(r_score, f_score) AS segment
FROM scored
ORDER BY profile_id
