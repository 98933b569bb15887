"""Crash safety of managed-table writes: the server is killed (SIGKILL) in
the middle of a stream of ingests and INSERTs from several clients, then
restarted on the same warehouse. Every acknowledged write must be present
exactly once and complete; an unacknowledged one may be present, but then
complete and once; the table stays readable."""

from __future__ import annotations

import threading
import time
from collections import Counter

import adbc_driver_manager
import pyarrow as pa

import seglake_harness as h

ROWS_PER_INGEST = 50


def test_sigkill_during_writes_loses_no_acknowledged_row(launch, tmp_path):
    wh = tmp_path / "wh"
    dep = launch.start(wh)
    c = dep.connect()
    h.run_command(c, "CREATE TABLE hits (writer INT, seq INT, n INT)")
    c.close()

    writers = 3
    acknowledged: list[list[int]] = [[] for _ in range(writers)]
    enough = threading.Barrier(writers + 1, timeout=120)
    stop = threading.Event()

    def work(w: int) -> None:
        conn = dep.connect()
        seq = 0
        try:
            while not stop.is_set():
                try:
                    if seq % 4 == 3:
                        # An INSERT: one row, committed like an ingest.
                        h.run_command(conn, f"INSERT INTO hits VALUES ({w}, {seq}, 0)")
                    else:
                        data = pa.table({
                            "writer": pa.array([w] * ROWS_PER_INGEST, pa.int32()),
                            "seq": pa.array([seq] * ROWS_PER_INGEST, pa.int32()),
                            "n": pa.array(range(ROWS_PER_INGEST), pa.int32()),
                        })
                        with conn.cursor() as cur:
                            cur.adbc_ingest("hits", data, mode="append")
                except adbc_driver_manager.Error:
                    return  # the server is gone
                acknowledged[w].append(seq)
                if seq == 5:
                    enough.wait()
                seq += 1
        finally:
            try:
                conn.close()
            except Exception:
                pass

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    enough.wait()          # every writer has committed a few times
    time.sleep(0.3)        # and is in the middle of more
    dep.kill()             # SIGKILL: no flush, no goodbye
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert all(len(a) >= 6 for a in acknowledged)

    dep2 = launch.start(wh)
    c = dep2.connect()
    got = h.rows(h.run_sql(c, "SELECT writer, seq, count(*), count(DISTINCT n) FROM hits GROUP BY 1, 2"))
    present = {(w, s): (cnt, distinct) for w, s, cnt, distinct in got}
    for w in range(writers):
        for s in acknowledged[w]:
            assert (w, s) in present, f"acknowledged write {(w, s)} is missing"
    for (w, s), (cnt, distinct) in present.items():
        expected = 1 if s % 4 == 3 else ROWS_PER_INGEST
        assert cnt == distinct == expected, f"write {(w, s)}: {cnt} rows ({distinct} distinct), expected {expected} once"
    # At most the writes in flight at the kill are present unacknowledged.
    extra = Counter(w for (w, s) in present if s not in acknowledged[w])
    assert all(v <= 1 for v in extra.values()), extra
    # The table still takes writes after the crash.
    h.run_command(c, "INSERT INTO hits VALUES (99, 0, 0)")
    assert h.rows(h.run_sql(c, "SELECT count(*) FROM hits WHERE writer = 99")) == [(1,)]
    c.close()
    dep2.stop()
