"""Users, roles and grants through the real client (docs/security.md): an
account made in SQL logs in on every server sharing the warehouse, without
a restart, and sees and does only what it is granted."""

import datetime as dt
import random
from pathlib import Path

import adbc_driver_manager
import pytest
from adbc_driver_manager import AdbcStatusCode

import collector_client as cc
import seglake_harness as h

ROOT, ROOT_PW = "root", "root-secret-1"
BI, BI_PW = "bi", "bi-password-1"


@pytest.fixture(scope="module")
def pair(launch, make_demo, tmp_path_factory):
    """Two servers sharing one demo warehouse; `root` administers both."""
    warehouse = make_demo(tmp_path_factory.mktemp("privileges"))
    args = ["--user", f"{ROOT}:{ROOT_PW}"]
    a = launch.start(warehouse, args=[*args, "--collect", "127.0.0.1:0", "--collect-flush-ms", "30"])
    b = launch.start(warehouse, args=args)
    yield a, b, Path(warehouse)
    a.stop()
    b.stop()


@pytest.fixture(scope="module")
def root(pair):
    c = pair[0].connect(ROOT, ROOT_PW)
    yield c
    c.close()


def refused(conn, sql) -> str:
    with pytest.raises(adbc_driver_manager.Error) as ei:
        h.run_sql(conn, sql)
    assert h.status_of(ei.value) == AdbcStatusCode.UNAUTHORIZED, str(ei.value)
    return str(ei.value)


def login_fails(dep, user, password):
    with pytest.raises(adbc_driver_manager.Error) as ei:
        c = dep.connect(user, password)
        try:
            h.run_sql(c, "SELECT 1")
        finally:
            c.close()
    assert h.status_of(ei.value) == AdbcStatusCode.UNAUTHENTICATED, str(ei.value)


def listed_tables(conn) -> set[tuple[str, str]]:
    objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    return {
        (schema["db_schema_name"], table["table_name"])
        for catalog in objects
        for schema in catalog["catalog_db_schemas"] or []
        if schema["db_schema_name"] != "information_schema"
        for table in schema["db_schema_tables"] or []
    }


def test_a_read_only_account_sees_only_its_grants_on_another_server(pair, root):
    a, b, _ = pair
    h.run_command(root, f"CREATE USER {BI} WITH PASSWORD '{BI_PW}'")
    h.run_command(root, f"GRANT SELECT ON TABLE public.profiles TO {BI}")
    profiles = h.rows(h.run_sql(root, "SELECT count(*) FROM profiles"))

    # Made on server a, logging in on server b, which was not restarted.
    bi = b.connect(BI, BI_PW)
    try:
        assert listed_tables(bi) == {("public", "profiles")}
        assert h.rows(h.run_sql(bi, "SELECT count(*) FROM profiles")) == profiles
        message = refused(bi, "SELECT count(*) FROM events")
        assert "SELECT ON TABLE public.events" in message, message
        # A join with a table it may not read: refused as a whole.
        refused(bi, "SELECT count(*) FROM profiles p JOIN events e ON p.profile_id = e.profile_id")
        refused(bi, "DROP TABLE profiles")
        refused(bi, "CREATE USER mallory PASSWORD 'x'")
        refused(bi, "SELECT * FROM system.users")
        # Nothing was dropped.
        assert h.rows(h.run_sql(root, "SELECT count(*) FROM profiles")) == profiles

        # A grant made on a counts at bi's next statement on b.
        h.run_command(root, f"GRANT reader TO {BI}")
        assert ("public", "events") in listed_tables(bi)
        assert h.rows(h.run_sql(bi, "SELECT count(*) FROM events"))[0][0] > 0
        h.run_command(root, f"REVOKE reader FROM {BI}")
        refused(bi, "SELECT count(*) FROM events")
    finally:
        bi.close()


def test_passwords_are_only_hashes_and_changes_count_at_once(pair, root):
    a, b, warehouse = pair
    h.run_command(root, "CREATE USER IF NOT EXISTS dave PASSWORD 'dave-old-pw'")
    dave = b.connect("dave", "dave-old-pw")
    assert h.rows(h.run_sql(dave, "SELECT 1")) == [(1,)]

    h.run_command(root, "ALTER USER dave WITH PASSWORD 'dave-new-pw'")
    login_fails(b, "dave", "dave-old-pw")
    fresh = b.connect("dave", "dave-new-pw")
    fresh.close()

    # The catalog holds salted argon2id hashes, never a password.
    catalog = "".join(p.read_text() for p in (warehouse / "_seglake" / "catalog").glob("*.json"))
    assert "$argon2id$" in catalog
    for secret in ("dave-old-pw", "dave-new-pw", BI_PW):
        assert secret not in catalog
    users = h.rows(h.run_sql(root, "SELECT name, roles, created_by FROM system.users ORDER BY name"))
    assert ("dave", "", ROOT) in users, users

    # Dropped: no new login, and the open session is refused at once.
    h.run_command(root, "DROP USER dave")
    login_fails(b, "dave", "dave-new-pw")
    refused(dave, "SELECT count(*) FROM profiles")
    dave.close()


def test_the_server_users_names_are_taken(root):
    with pytest.raises(adbc_driver_manager.Error) as ei:
        h.run_command(root, f"CREATE USER {ROOT} PASSWORD 'x'")
    assert h.status_of(ei.value) == AdbcStatusCode.ALREADY_EXISTS, str(ei.value)
    with pytest.raises(adbc_driver_manager.Error) as ei:
        h.run_command(root, "CREATE ROLE reader")
    assert h.status_of(ei.value) == AdbcStatusCode.ALREADY_EXISTS, str(ei.value)


def test_a_password_bound_as_a_parameter(pair, root):
    a, _, _ = pair
    with root.cursor() as cur:
        cur.execute("CREATE USER erin PASSWORD ?", parameters=("erin-param-pw",))
    erin = a.connect("erin", "erin-param-pw")
    try:
        assert listed_tables(erin) == set()
        refused(erin, "SELECT count(*) FROM profiles")
    finally:
        erin.close()
    h.run_command(root, "DROP USER erin")


def test_the_collector_takes_events_from_users_with_insert_only(pair, root):
    a, _, _ = pair
    h.run_command(root, "CREATE USER tag PASSWORD 'tag-pw-1'")
    before = h.rows(h.run_sql(root, "SELECT count(*) FROM events"))[0][0]
    events = cc.make_events(random.Random(21), "priv-", 3)
    status, _, body = cc.post_events(a.collector_url, events, authorization=cc.basic("tag", "tag-pw-1"))
    assert status == 403, body
    assert "INSERT ON TABLE public.events" in body["error"], body
    assert h.rows(h.run_sql(root, "SELECT count(*) FROM events"))[0][0] == before

    h.run_command(root, "GRANT INSERT ON TABLE public.events TO tag")
    status, _, body = cc.post_events(a.collector_url, events, authorization=cc.basic("tag", "tag-pw-1"))
    assert status == 200, body
    assert body["accepted"] == 3, body
    assert h.rows(h.run_sql(root, "SELECT count(*) FROM events"))[0][0] == before + 3
    # INSERT only: the same user reads nothing.
    tag = a.connect("tag", "tag-pw-1")
    try:
        refused(tag, "SELECT count(*) FROM events")
    finally:
        tag.close()


def test_ingest_keys_only_append_through_the_collector(pair, root):
    a, _, _ = pair
    shop, evil = "https://shop.example", "https://evil.example"
    rows = h.rows(h.run_sql(root, f"CREATE INGEST KEY web FOR TABLE events ALLOW ORIGIN '{shop}'"))
    assert len(rows) == 1 and rows[0][0] == "web" and rows[0][1] == "public.events", rows
    key = rows[0][2]
    assert key.startswith("sgk_") and len(key) == 68
    bearer = f"Bearer {key}"
    before = h.rows(h.run_sql(root, "SELECT count(*) FROM events"))[0][0]
    last_used = "SELECT last_used_at FROM system.ingest_keys WHERE name = 'web'"
    assert h.rows(h.run_sql(root, last_used)) == [(None,)]
    t0 = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    # Server to server (no Origin): appended.
    events = cc.make_events(random.Random(7), "key-", 4)
    status, _, body = cc.post_events(a.collector_url, events, authorization=bearer)
    assert status == 200 and body["accepted"] == 4, body
    # From the allowed origin: appended, and the answer allows that origin.
    more = cc.make_events(random.Random(8), "key2-", 2)
    status, headers, body = cc.post_events(a.collector_url, more, authorization=bearer, headers={"Origin": shop})
    assert status == 200, body
    assert headers["Access-Control-Allow-Origin"] == shop
    # From another origin: refused, nothing written.
    status, headers, body = cc.post_events(
        a.collector_url, cc.make_events(random.Random(9), "evil-", 2), authorization=bearer, headers={"Origin": evil}
    )
    assert status == 403, body
    assert "Access-Control-Allow-Origin" not in headers
    assert h.rows(h.run_sql(root, "SELECT count(*) FROM events"))[0][0] == before + 6
    # The key's last use: at once on the server that took the requests, and
    # on the other server once written to the catalog (in the background).
    t1 = dt.datetime.now(dt.timezone.utc)
    [(used,)] = h.rows(h.run_sql(root, last_used))
    assert used is not None and t0 <= used <= t1, (t0, used, t1)
    on_b = pair[1].connect(ROOT, ROOT_PW)
    try:
        seen = h.wait_for(lambda: h.rows(h.run_sql(on_b, last_used))[0][0], 10, "the key's use on server b")
        assert t0 <= seen <= t1, (t0, seen, t1)
    finally:
        on_b.close()

    # The browser's preflight: allowed for the key's origin only.
    status, headers, _ = cc.request(f"{a.collector_url}/v1/events", method="OPTIONS", headers={"Origin": shop})
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == shop
    assert "authorization" in headers["Access-Control-Allow-Headers"]
    status, headers, _ = cc.request(f"{a.collector_url}/v1/events", method="OPTIONS", headers={"Origin": evil})
    assert status == 403
    assert "Access-Control-Allow-Origin" not in headers

    # Not a login: neither as the key's name nor with the key as password.
    for user in ("web", key):
        login_fails(a, user, key)
    # A key for another table cannot post into the collector's.
    h.run_command(root, "CREATE TABLE other_events AS SELECT * FROM events LIMIT 0")
    other = h.rows(h.run_sql(root, "CREATE INGEST KEY other FOR TABLE other_events"))[0][2]
    status, _, body = cc.post_events(a.collector_url, events, authorization=f"Bearer {other}")
    assert status == 403 and "appends to" in body["error"], body
    # A refused request is not a use.
    assert h.rows(h.run_sql(root, "SELECT last_used_at FROM system.ingest_keys WHERE name = 'other'")) == [(None,)]
    # Unknown and dropped keys: 401.
    status, _, _ = cc.post_events(a.collector_url, events, authorization="Bearer sgk_" + "0" * 64)
    assert status == 401
    h.run_command(root, "DROP INGEST KEY web")
    status, _, _ = cc.post_events(a.collector_url, events, authorization=bearer)
    assert status == 401
    # The catalog keeps a digest, never the key; the system table neither.
    listed = h.rows(h.run_sql(root, "SELECT * FROM system.ingest_keys"))
    assert all(key not in str(r) and other not in str(r) for r in listed)
    catalog = "".join(p.read_text() for p in (pair[2] / "_seglake" / "catalog").glob("*.json"))
    assert key not in catalog and other not in catalog
    assert h.rows(h.run_sql(root, "SELECT count(*) FROM events"))[0][0] == before + 6


def test_the_audit_trail_survives_a_restart(launch, make_demo, tmp_path_factory):
    warehouse = make_demo(tmp_path_factory.mktemp("audit"))
    dep = launch.start(warehouse, args=["--user", f"{ROOT}:{ROOT_PW}"])
    root = dep.connect(ROOT, ROOT_PW)
    h.run_command(root, "CREATE USER eve PASSWORD 'eve-pw-1'")
    eve = dep.connect("eve", "eve-pw-1")
    refused(eve, "DROP TABLE profiles")
    refused(eve, "SELECT * FROM system.audit")
    eve.close()
    (pid,) = h.rows(h.run_sql(root, "SELECT profile_id FROM profiles ORDER BY profile_id LIMIT 1"))[0]
    h.run_command(root, f"FORGET PROFILE '{pid}'")
    root.close()
    login_fails(dep, "eve", "not-her-password")

    dep = launch.restart(dep)
    root = dep.connect(ROOT, ROOT_PW)
    try:
        rows = h.rows(
            h.run_sql(root, 'SELECT "user", client, kind, objects, outcome FROM system.audit ORDER BY at')
        )
        local = "127.0.0.1"
        assert (ROOT, local, "security", "users, roles, grants and keys", "ok") in rows, rows
        assert ("eve", local, "ddl", "public.profiles", "denied") in rows, rows
        assert ("eve", local, "query", "system.audit", "denied") in rows, rows
        assert (ROOT, local, "maintenance", "every managed table", "ok") in rows, rows
        assert ("eve", "127.0.0.1", "login", "", "denied") in rows, rows
        # Queries that change nothing are not recorded, nor the statements'
        # text: the erased profile's id is nowhere in the trail.
        assert not any(r[2] == "query" and r[4] == "ok" for r in rows), rows
        everything = h.rows(h.run_sql(root, "SELECT * FROM system.audit"))
        assert pid not in str(everything)
    finally:
        root.close()
        dep.stop()
