-- title: Identifier hygiene: e-mail identifiers per source, distinct before and after normalize_email
-- duckdb: normalize_email is a DuckDB macro (queries/duckdb_macros.sql)
SELECT source,
       count(*) AS email_rows,
       count(DISTINCT id_value) AS raw_distinct,
       count(DISTINCT normalize_email(id_value)) AS normalized_distinct,
       count(*) FILTER (WHERE normalize_email(id_value) IS NULL) AS invalid
FROM identifiers
WHERE id_type = 'email'
GROUP BY source;
