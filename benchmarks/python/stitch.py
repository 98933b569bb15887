"""Identity stitching references for `seglake-bench stitch`.

  stitch.py scipy     --links L --out O --reps N --max-records M
  stitch.py duckdb-lp --links L --out O --reps N --max-records M [--threads T]

Both apply the same over-merge guard as `stitch_identities` (an identifier
shared by more than M distinct records creates no link; NULL or empty values
create none) and give every record the smallest record_id of its connected
component. Each timed run starts from the Parquet file (reading and string
interning included, as for Seglake). Prints one JSON line:
{"seconds": [...], "records": ..., "people": ..., "peak_rss_bytes": ...}
"""

import argparse
import json
import resource
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def scipy_run(links, max_records):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    t = pq.read_table(links, columns=["record_id", "id_type", "id_value"])
    rec = t["record_id"].combine_chunks()
    valid = pc.and_(pc.is_valid(t["id_type"]), pc.and_(pc.is_valid(t["id_value"]), pc.not_equal(t["id_value"], "")))
    # Records: sorted unique ids, so that the smallest code is the smallest id.
    records = pc.unique(rec)
    records = pc.take(records, pc.array_sort_indices(records))
    rcode = pc.index_in(rec, value_set=records).to_numpy()
    ident = pc.binary_join_element_wise(t["id_type"], t["id_value"], "\x1f").combine_chunks()
    ident_enc = ident.dictionary_encode()
    icode = ident_enc.indices.to_numpy(zero_copy_only=False)
    mask = valid.to_numpy(zero_copy_only=False)
    rcode_v, icode_v = rcode[mask], icode[mask]
    # Guard: distinct records per identifier.
    pairs = np.unique(np.stack([icode_v, rcode_v]), axis=1)
    counts = np.bincount(pairs[0], minlength=len(ident_enc.dictionary))
    keep = counts[pairs[0]] <= max_records
    i_kept, r_kept = pairs[0][keep], pairs[1][keep]
    n_rec = len(records)
    n = n_rec + len(ident_enc.dictionary)
    g = coo_matrix((np.ones(len(r_kept), dtype=np.int8), (r_kept, n_rec + i_kept)), shape=(n, n))
    _, labels = connected_components(g, directed=False)
    rec_labels = labels[:n_rec]
    smallest = np.full(labels.max() + 1, n_rec, dtype=np.int64)
    np.minimum.at(smallest, rec_labels, np.arange(n_rec))
    person = pc.take(records, pa.array(smallest[rec_labels]))
    return pa.table({"record_id": records, "person_id": person})


DUCKDB_LP = """
CREATE OR REPLACE TEMP TABLE links AS
    SELECT record_id, id_type || chr(31) || id_value AS ident
    FROM read_parquet('{links}')
    WHERE record_id IS NOT NULL;
CREATE OR REPLACE TEMP TABLE good AS
    SELECT DISTINCT l.record_id, l.ident
    FROM links l
    JOIN (SELECT ident FROM links WHERE ident IS NOT NULL AND NOT ends_with(ident, chr(31))
          GROUP BY ident HAVING count(DISTINCT record_id) <= {max_records}) g USING (ident);
CREATE OR REPLACE TEMP TABLE labels AS
    SELECT DISTINCT record_id, record_id AS label FROM links;
"""

DUCKDB_STEP = """
CREATE OR REPLACE TEMP TABLE new_labels AS
    WITH ident_label AS (
        SELECT g.ident, min(l.label) AS label
        FROM good g JOIN labels l USING (record_id)
        GROUP BY g.ident
    ),
    rec_label AS (
        SELECT g.record_id, min(il.label) AS label
        FROM good g JOIN ident_label il USING (ident)
        GROUP BY g.record_id
    )
    SELECT l.record_id, least(l.label, coalesce(r.label, l.label)) AS label
    FROM labels l LEFT JOIN rec_label r USING (record_id);
"""


def duckdb_run(links, max_records, threads):
    import duckdb

    con = duckdb.connect(config={"threads": threads} if threads else {})
    con.execute(DUCKDB_LP.format(links=links, max_records=max_records))
    iterations = 0
    while True:
        iterations += 1
        con.execute(DUCKDB_STEP)
        changed = con.execute(
            "SELECT count(*) FROM new_labels n JOIN labels l USING (record_id) WHERE n.label <> l.label"
        ).fetchone()[0]
        con.execute("CREATE OR REPLACE TEMP TABLE labels AS SELECT * FROM new_labels")
        if changed == 0:
            break
    out = con.execute("SELECT record_id, label AS person_id FROM labels").to_arrow_table()
    con.close()
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("engine", choices=["scipy", "duckdb-lp"])
    p.add_argument("--links", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--max-records", type=int, default=100)
    p.add_argument("--threads", type=int)
    args = p.parse_args()
    seconds = []
    table = None
    for _ in range(args.reps):
        start = time.perf_counter()
        if args.engine == "scipy":
            table = scipy_run(args.links, args.max_records)
        else:
            table = duckdb_run(args.links, args.max_records, args.threads)
        seconds.append(time.perf_counter() - start)
    pq.write_table(table, args.out)
    people = len(pc.unique(table["person_id"]))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "records": table.num_rows, "people": people, "peak_rss_bytes": rss}))


if __name__ == "__main__":
    main()
