-- title: RFM: NTILE(5) scores over a year of purchases (ties broken on profile_id), rfm_segment, profiles per segment
-- duckdb: rfm_segment is a DuckDB macro (queries/duckdb_macros.sql)
WITH per_profile AS (
    SELECT profile_id,
           max(event_time) AS last_purchase,
           count(*) AS frequency,
           -- an exact decimal sum: float sums differ in the last bits
           -- between engines (even after rounding to cents), which would
           -- reorder near-ties of NTILE(5) ORDER BY monetary
           CAST(sum(CAST(amount AS DECIMAL(18, 2))) AS DOUBLE) AS monetary
    FROM events
    WHERE event_type = 'purchase' AND profile_id IS NOT NULL
    GROUP BY profile_id
),
scored AS (
    SELECT profile_id, monetary,
           NTILE(5) OVER (ORDER BY last_purchase ASC, profile_id ASC) AS r_score,
           NTILE(5) OVER (ORDER BY frequency ASC, profile_id ASC) AS f_score,
           NTILE(5) OVER (ORDER BY monetary ASC, profile_id ASC) AS m_score
    FROM per_profile
)
SELECT rfm_segment(r_score, f_score) AS segment,
       count(*) AS profiles,
       avg(m_score) AS avg_m_score,
       sum(monetary) AS revenue
FROM scored
GROUP BY 1;
