#!/usr/bin/env python3
"""How the console's tables scale with the directory: a SQLite store with
N users, N keys (one per user; every tenth with a budget) and N/100 teams of
ten members, then the timings of the management lists behind the Keys, Users,
Teams and Budgets pages (first page, a search, a deep page) and of the pages
themselves as the browser gets them (server-rendered HTML, signed in), and the
process's memory with the directory loaded.

    bench/console_directory_scale.py [N]        (default 100,000)

Needs TOLLGATE_BIN (default: the release build) and httpx. Only 127.0.0.1.
"""

import json
import os
import pathlib
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = os.environ.get("TOLLGATE_BIN") or str(
    pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "tollgate"
)
SITE = os.environ.get("TOLLGATE_SITE_ROOT") or str(ROOT / "site")
MASTER = "sk-scale-master"


def serve(db):
    env = dict(os.environ, TOLLGATE_MASTER_KEY=MASTER, DATABASE_URL=f"sqlite://{db}", TOLLGATE_SITE_ROOT=SITE)
    p = subprocess.Popen([BIN, "serve", "--port", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        m = re.search(r"listening on (\S+)", line)
        if m:
            return p, m.group(1)
    raise SystemExit("tollgate did not start")


def rss_mb(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed(c, path, params=None, runs=7):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r = c.get(path, params=params)
        times.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return statistics.median(times), max(times)


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="tollgate-dirscale-"))
    db = work / "scale.db"
    p, _ = serve(db)  # creates the schema
    p.terminate()
    p.wait()

    con = sqlite3.connect(db)
    now = int(time.time() * 1000)
    t0 = time.time()
    teams = max(N // 100, 1)
    con.executemany(
        "INSERT INTO teams (team_id, team_alias, settings, created_at, updated_at) VALUES (?,?,?,?,?)",
        ((f"team-{t}", f"Team {t}", json.dumps({"max_budget": 1000}), now - t, now - t) for t in range(teams)),
    )
    con.executemany(
        "INSERT INTO users (user_id, user_email, user_role, spend, settings, created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
        (
            (f"user-{i}", f"person{i}@example.com", "internal_user", (i % 97) / 10,
             json.dumps({"max_budget": 10} if i % 10 == 0 else {}), now - i, now - i)
            for i in range(N)
        ),
    )
    con.executemany(
        "INSERT INTO team_members (team_id, user_id, role, created_at) VALUES (?,?,?,?)",
        ((f"team-{i % teams}", f"user-{i}", "user", now) for i in range(min(N, teams * 10))),
    )
    con.executemany(
        "INSERT INTO api_keys (token, key_name, key_alias, user_id, team_id, spend, settings, created_at, updated_at) "
        "VALUES (?,?,?,?,?,?,?,?,?)",
        (
            (f"{i:064x}", f"sk-...{i % 10000:04d}", f"key-{i}", f"user-{i}", f"team-{i % teams}", (i % 89) / 10,
             json.dumps({"max_budget": 5, "budget_duration": "30d"} if i % 10 == 0 else {}), now - i, now - i)
            for i in range(N)
        ),
    )
    con.commit()
    con.close()
    print(f"{N:,} users, {N:,} keys, {teams:,} teams written in {time.time() - t0:.0f} s")

    t0 = time.time()
    p, url = serve(db)
    print(f"started in {time.time() - t0:.1f} s; RSS {rss_mb(p.pid):.0f} MB with the directory loaded")
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MASTER}"}, timeout=120) as c:
            cases = [
                ("/key/list, first page", "/key/list", {"return_full_object": "true", "size": 50}),
                ("/key/list, search", "/key/list", {"return_full_object": "true", "size": 50, "search": "key-4242"}),
                ("/key/list, page 1000", "/key/list", {"return_full_object": "true", "size": 50, "page": 1000}),
                ("/user/list, first page", "/user/list", {"page_size": 50}),
                ("/user/list, by email", "/user/list", {"page_size": 50, "user_email": "person4242"}),
                ("/user/list, page 1000", "/user/list", {"page_size": 50, "page": 1000}),
                ("/team/list", "/team/list", None),
                ("/spend/budgets, first page", "/spend/budgets", {"page_size": 50}),
                ("/spend/budgets, keys, page 100", "/spend/budgets", {"page_size": 50, "kind": "key", "page": 100}),
            ]
            print(f"{'read':34} {'median ms':>10} {'max ms':>8}")
            for name, path, params in cases:
                med, mx = timed(c, path, params)
                print(f"{name:34} {med:10.1f} {mx:8.1f}")
            # A change: written, then the directory is read again (every process does so).
            times = []
            for i in range(5):
                t = time.perf_counter()
                r = c.post("/key/update", json={"key": f"{i:064x}", "max_budget": 50 + i})
                assert r.status_code == 200, r.text
                times.append((time.perf_counter() - t) * 1000)
            print(f"{'/key/update (a change)':34} {statistics.median(times):10.1f} {max(times):8.1f}")
        # A second process on the same store: how soon it serves a change
        # made through the first (its poll, then the change log's records).
        p2, url2 = serve(db)
        try:
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MASTER}"}, timeout=120) as c, \
                    httpx.Client(base_url=url2, headers={"Authorization": f"Bearer {MASTER}"}, timeout=120) as c2:
                seen = []
                for i in range(5):
                    budget = 500 + i
                    token = f"{i + 10:064x}"
                    r = c.post("/key/update", json={"key": token, "max_budget": budget})
                    assert r.status_code == 200, r.text
                    t = time.perf_counter()
                    while c2.get("/key/info", params={"key": token}).json()["info"]["max_budget"] != budget:
                        time.sleep(0.005)
                    seen.append((time.perf_counter() - t) * 1000)
                print(f"{'seen by a second process':34} {statistics.median(seen):10.1f} {max(seen):8.1f}  (it polls every 2 s)")
                # How the second process caught up, from its own metrics.
                text = c2.get("/metrics").text
                for how in ("log", "full"):
                    n = re.search(rf'tollgate_directory_update_seconds_count{{how="{how}"}} (\S+)', text)
                    total = re.search(rf'tollgate_directory_update_seconds_sum{{how="{how}"}} (\S+)', text)
                    if n and float(n.group(1)) > 0:
                        print(f"{'  its catch-ups, ' + how:34} {1000 * float(total.group(1)) / float(n.group(1)):10.1f}  (mean of {int(float(n.group(1)))})")
            print(f"RSS of the second process after the changes: {rss_mb(p2.pid):.0f} MB")
        finally:
            p2.terminate()
            p2.wait()
        with httpx.Client(base_url=url, timeout=120, follow_redirects=False) as b:
            r = b.post("/ui/session", data={"password": MASTER}, headers={"origin": url})
            assert r.status_code in (302, 303), r.text
            for path in ["/ui/keys", "/ui/keys?q=key-4242", "/ui/users", "/ui/users?page=1000", "/ui/teams", "/ui/budgets"]:
                med, mx = timed(b, path)
                print(f"{'page ' + path:34} {med:10.1f} {mx:8.1f}")
        print(f"RSS after the reads: {rss_mb(p.pid):.0f} MB")
    finally:
        p.terminate()
        p.wait()
        for f in work.iterdir():
            f.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
