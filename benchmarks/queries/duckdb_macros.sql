-- Plain-SQL equivalents of Seglake's functions, so that DuckDB runs the
-- same suite text. Loaded by benchmarks/python/bench_worker.py before the
-- first query (DuckDB session with TimeZone = 'UTC').

-- rfm_segment(r, f): the R x F grid of docs/functions.md.
CREATE OR REPLACE MACRO rfm_segment(r, f) AS
    CASE
        WHEN r IS NULL OR f IS NULL OR r NOT BETWEEN 1 AND 5 OR f NOT BETWEEN 1 AND 5 THEN NULL
        WHEN r <= 2 THEN CASE WHEN f <= 2 THEN 'Hibernating' WHEN f <= 4 THEN 'At Risk' ELSE 'Can''t Lose Them' END
        WHEN r = 3 THEN CASE WHEN f <= 2 THEN 'About To Sleep' WHEN f = 3 THEN 'Need Attention' ELSE 'Loyal Customers' END
        WHEN r = 4 THEN CASE WHEN f = 1 THEN 'Promising' WHEN f <= 3 THEN 'Potential Loyalists' ELSE 'Loyal Customers' END
        ELSE CASE WHEN f = 1 THEN 'New Customers' WHEN f <= 3 THEN 'Potential Loyalists' ELSE 'Champions' END
    END;

-- appetence_score(is_engagement, event_time, as_of, half_life_days):
-- min(1, (E + 1) / (S + 2)) with weights 0.5 ^ (age_days / half_life).
CREATE OR REPLACE MACRO _appetence_weight(t, as_of, half) AS
    pow(0.5, (epoch_us(CAST(as_of AS TIMESTAMPTZ)) - epoch_us(t)) / 86400e6 / half);
CREATE OR REPLACE MACRO appetence_score(is_eng, t, as_of, half) AS
    least(1.0,
        (coalesce(sum(CASE WHEN is_eng AND t <= CAST(as_of AS TIMESTAMPTZ) AND half IS NOT NULL
                           THEN _appetence_weight(t, as_of, half) END), 0) + 1)
      / (coalesce(sum(CASE WHEN NOT is_eng AND t <= CAST(as_of AS TIMESTAMPTZ) AND half IS NOT NULL
                           THEN _appetence_weight(t, as_of, half) END), 0) + 2));

-- normalize_email(email): trim, lowercase, plausibility checks, gmail rules.
CREATE OR REPLACE MACRO _email_plausible(s) AS
    s IS NOT NULL
    AND length(s) - length(replace(s, '@', '')) = 1
    AND split_part(s, '@', 1) <> ''
    AND split_part(s, '@', 2) <> ''
    AND strpos(split_part(s, '@', 2), '.') > 0
    AND NOT regexp_matches(s, '\s');
CREATE OR REPLACE MACRO _gmail_local(s) AS
    replace(split_part(split_part(s, '@', 1), '+', 1), '.', '');
CREATE OR REPLACE MACRO _normalize_email(s) AS
    CASE
        WHEN NOT _email_plausible(s) THEN NULL
        WHEN split_part(s, '@', 2) IN ('gmail.com', 'googlemail.com') THEN
            CASE WHEN _gmail_local(s) = '' THEN NULL ELSE _gmail_local(s) || '@gmail.com' END
        ELSE s
    END;
CREATE OR REPLACE MACRO normalize_email(e) AS _normalize_email(lower(trim(e)));
