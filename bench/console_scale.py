#!/usr/bin/env python3
"""How the console's reads scale: a SQLite store with ROWS request logs over
30 days (50 keys, 20 users, 5 teams, 8 models), then the timings of the
dashboard's /spend/activity (24 h, 30 d, 12 months) and the log page's
/spend/logs (newest page, a filtered page, a page deep in the cursor).

    bench/console_scale.py [ROWS]        (default 1,000,000)

Needs TOLLGATE_BIN (default: the release build) and httpx. Only 127.0.0.1.
"""

import os
import pathlib
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = os.environ.get("TOLLGATE_BIN") or str(
    pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "tollgate"
)
MASTER = "sk-scale-master"
HOUR = 3_600_000


def serve(db):
    env = dict(os.environ, TOLLGATE_MASTER_KEY=MASTER, DATABASE_URL=f"sqlite://{db}")
    p = subprocess.Popen([BIN, "serve", "--port", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        m = re.search(r"listening on (\S+)", line)
        if m:
            return p, m.group(1)
    raise SystemExit("tollgate did not start")


def main():
    work = pathlib.Path(tempfile.mkdtemp(prefix="tollgate-scale-"))
    db = work / "scale.db"
    p, _ = serve(db)  # creates the schema
    p.terminate()
    p.wait()

    con = sqlite3.connect(db)
    now = int(time.time() * 1000)
    start = now - 30 * 24 * HOUR
    rnd = random.Random(7)
    keys = [(f"{i:064x}", f"user-{i % 20}", f"team-{i % 5}") for i in range(50)]
    models = [f"model-{i}" for i in range(8)]
    t0 = time.time()

    def rows():
        for i in range(ROWS):
            k, u, t = rnd.choice(keys)
            m = rnd.choice(models)
            at = start + (i * (now - start)) // ROWS
            ok = rnd.random() > 0.02
            lat = int(rnd.lognormvariate(6, 0.6))
            pt, ct = rnd.randint(10, 2000), rnd.randint(1, 800)
            yield (f"r{i:09d}", at, at + lat, "chat", "openai", k, None, u, t, m, m, "d", "openai", m, False,
                   200 if ok else 500, "success" if ok else "error", None if ok else "upstream failed", 1, 0,
                   pt, ct, pt + ct, (pt * 2.5 + ct * 10) / 1e6, lat)

    con.executemany(
        "INSERT INTO request_logs (request_id, started_at_ms, ended_at_ms, call_type, surface, api_key_hash, key_alias, "
        "user_id, team_id, model_requested, model_group, deployment_id, provider, upstream_model, stream, status_code, "
        "outcome, error, attempts, fallbacks_used, prompt_tokens, completion_tokens, total_tokens, spend, latency_ms) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        rows(),
    )
    # The rollup, as the migration fills it from logs written before it.
    backfill = (ROOT / "migrations/sqlite/0011_request_rollup.sql").read_text()
    backfill = backfill[backfill.index("INSERT INTO request_rollup_hourly"):]
    con.executescript(backfill)
    con.commit()
    rollup_rows = con.execute("SELECT COUNT(*) FROM request_rollup_hourly").fetchone()[0]
    daily_rows = con.execute("SELECT COUNT(*) FROM request_rollup_daily").fetchone()[0]
    con.close()
    print(f"{ROWS:,} request logs ({rollup_rows:,} hourly and {daily_rows:,} daily rollup rows), written in {time.time() - t0:.0f} s")

    p, url = serve(db)
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {MASTER}"}, timeout=120) as c:
            first = c.get("/spend/logs", params={"limit": 51}).json()
            deep = first
            for _ in range(200):  # 200 pages down
                deep = c.get("/spend/logs", params={"limit": 51, "after": deep[-1]["cursor"]}).json()
            cases = [
                ("dashboard, 24 hours by hour", "/spend/activity", {"period": "hour"}),
                ("dashboard, 30 days by day", "/spend/activity", {"period": "day"}),
                ("dashboard, 12 months by month", "/spend/activity", {"period": "month"}),
                ("dashboard, 30 days, one user", "/spend/activity", {"period": "day", "user_id": "user-3"}),
                ("logs, newest page", "/spend/logs", {"limit": 51}),
                ("logs, one key's failures", "/spend/logs", {"limit": 51, "api_key": keys[3][0], "status": "failure"}),
                ("logs, page 201 by cursor", "/spend/logs", {"limit": 51, "after": deep[-1]["cursor"]}),
            ]
            print(f"{'query':34} {'median ms':>10} {'max ms':>8}")
            for name, path, params in cases:
                times = []
                for _ in range(7):
                    t = time.perf_counter()
                    r = c.get(path, params=params)
                    times.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200, r.text
                print(f"{name:34} {statistics.median(times):10.1f} {max(times):8.1f}")
            totals = c.get("/spend/activity", params={"period": "day"}).json()["totals"]
            assert totals["requests"] > 0.95 * ROWS, totals
    finally:
        p.terminate()
        p.wait()
        for f in work.iterdir():
            f.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
