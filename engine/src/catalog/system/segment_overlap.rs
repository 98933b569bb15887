//! `system.segment_overlap`: every pair of refreshed segments, their sizes
//! at the last refresh, intersection and Jaccard index (a view over the
//! membership snapshots `segment_data.<segment>`).

use seglake_catalog::{SEGMENT_DATA_SCHEMA, Snapshot};

use super::{SystemView, sql_string};

#[derive(Debug)]
pub(super) struct SegmentOverlap;

impl SystemView for SegmentOverlap {
    fn name(&self) -> &'static str {
        "segment_overlap"
    }

    fn sql(&self, snapshot: &Snapshot) -> String {
        let refreshed: Vec<&String> = snapshot
            .state
            .segments
            .iter()
            .filter(|(name, e)| {
                e.last_refresh.is_some() && snapshot.state.table(SEGMENT_DATA_SCHEMA, name).is_ok()
            })
            .map(|(name, _)| name)
            .collect();
        if refreshed.len() < 2 {
            return "SELECT arrow_cast(NULL, 'Utf8') AS segment_a, arrow_cast(NULL, 'Utf8') AS segment_b, \
                    arrow_cast(NULL, 'Int64') AS size_a, arrow_cast(NULL, 'Int64') AS size_b, \
                    arrow_cast(NULL, 'Int64') AS intersection, arrow_cast(NULL, 'Float64') AS jaccard \
                    WHERE false"
                .to_string();
        }
        let members: Vec<String> = refreshed
            .iter()
            .map(|name| {
                format!(
                    "SELECT {} AS segment, profile_id FROM {SEGMENT_DATA_SCHEMA}.\"{}\"",
                    sql_string(name),
                    name.replace('"', "\"\"")
                )
            })
            .collect();
        let names: Vec<String> = refreshed
            .iter()
            .map(|n| format!("({})", sql_string(n)))
            .collect();
        format!(
            "WITH m AS ({members}), \
             s AS (SELECT column1 AS segment FROM (VALUES {names})), \
             c AS (SELECT segment, count(*) AS size FROM m GROUP BY segment), \
             sz AS (SELECT s.segment, COALESCE(c.size, 0) AS size FROM s LEFT JOIN c ON s.segment = c.segment), \
             i AS (SELECT x.segment AS a, y.segment AS b, count(*) AS n FROM m x JOIN m y \
                   ON x.profile_id = y.profile_id AND x.segment < y.segment GROUP BY x.segment, y.segment) \
             SELECT sa.segment AS segment_a, sb.segment AS segment_b, sa.size AS size_a, sb.size AS size_b, \
                    COALESCE(i.n, 0) AS intersection, \
                    CASE WHEN sa.size + sb.size - COALESCE(i.n, 0) = 0 THEN 0.0 \
                         ELSE CAST(COALESCE(i.n, 0) AS DOUBLE) / CAST(sa.size + sb.size - COALESCE(i.n, 0) AS DOUBLE) END AS jaccard \
             FROM sz sa JOIN sz sb ON sa.segment < sb.segment \
             LEFT JOIN i ON i.a = sa.segment AND i.b = sb.segment",
            members = members.join(" UNION ALL "),
            names = names.join(", "),
        )
    }
}
