#!/usr/bin/env python3
"""Times the same three questions over raw CloudTrail logs and over the Parquet lake that
`trailhound replay --lake` wrote from them: `hunt` over the gzip logs, `hunt --lake`, and
DuckDB over the lake. Prints a Markdown table (best of --runs wall-clock seconds; every
engine on --threads threads) and checks that the three agree.

    trailhound simulate --out /tmp/month --days 30
    trailhound replay --state :memory: --lake /tmp/mlake -o /dev/null /tmp/month
    scripts/lake-bench.py /tmp/month /tmp/mlake

Needs `pip install duckdb`.
"""

import argparse
import os
import subprocess
import sys
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", help="directory of the raw CloudTrail logs")
    parser.add_argument("lake", help="the lake replay --lake wrote from them")
    parser.add_argument("--bin", default=os.environ.get("TRAILHOUND", "trailhound"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--day", default=None, help="the day of question 1 (YYYY-MM-DD)")
    args = parser.parse_args()

    import duckdb

    def hunt(*rest):
        out = subprocess.run(
            [args.bin, "hunt", "--threads", str(args.threads), "--format", "csv", *rest],
            capture_output=True, text=True, check=False,
        )
        if out.returncode != 0:
            sys.exit(f"hunt failed: {out.stderr}")
        return sorted(out.stdout.strip().splitlines()[1:])

    def raw(sql):
        return hunt(sql, args.raw)

    def lake(sql):
        return hunt("--lake", args.lake, sql)

    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    con.execute(
        "CREATE VIEW cloudtrail AS SELECT * FROM read_parquet("
        f"'{args.lake}/cloudtrail/*/*/*/*.parquet', hive_partitioning = true)"
    )

    def duck(sql):
        return sorted(",".join(str(v) for v in row) for row in con.sql(sql).fetchall())

    # The questions' constants come from the lake: the busiest day, an access key, an account.
    day = args.day or duck(
        "SELECT date FROM cloudtrail GROUP BY date ORDER BY count(*) DESC, date LIMIT 1"
    )[0]
    key = duck(
        "SELECT useridentity.accesskeyid FROM cloudtrail WHERE useridentity.accesskeyid LIKE 'AKIA%' "
        "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
    )[0]
    account = duck("SELECT account FROM cloudtrail GROUP BY 1 ORDER BY 1 LIMIT 1")[0]
    next_day = duck(f"SELECT CAST(DATE '{day}' + INTERVAL 1 DAY AS DATE)")[0]
    kms = "('PutKeyPolicy', 'CreateGrant', 'ScheduleKeyDeletion', 'DisableKey')"

    questions = [
        (
            f"count by eventname, one day ({day})",
            f"SELECT eventname, count(*) FROM cloudtrail WHERE eventtime >= '{day}T00:00:00Z' "
            f"AND eventtime < '{next_day}T00:00:00Z' GROUP BY eventname",
            f"SELECT eventname, count(*) FROM cloudtrail WHERE date = '{day}' GROUP BY eventname",
            f"SELECT eventname, count(*) FROM cloudtrail WHERE date = '{day}' GROUP BY eventname",
        ),
        (
            "every event of one access key, the month",
            f"SELECT eventid, eventname FROM cloudtrail WHERE useridentity.accesskeyid = '{key}'",
            f"SELECT eventid, eventname FROM cloudtrail WHERE useridentity.accesskeyid = '{key}'",
            f"SELECT eventid, eventname FROM cloudtrail WHERE useridentity.accesskeyid = '{key}'",
        ),
        (
            "one account's KMS key-policy changes",
            f"SELECT eventid FROM cloudtrail WHERE recipientaccountid = '{account}' "
            f"AND eventsource = 'kms.amazonaws.com' AND eventname IN {kms}",
            f"SELECT eventid FROM cloudtrail WHERE account = '{account}' "
            f"AND eventsource = 'kms.amazonaws.com' AND eventname IN {kms}",
            f"SELECT eventid FROM cloudtrail WHERE account = '{account}' "
            f"AND eventsource = 'kms.amazonaws.com' AND eventname IN {kms}",
        ),
    ]

    def best(run, sql):
        times, result = [], None
        for _ in range(args.runs):
            started = time.perf_counter()
            result = run(sql)
            times.append(time.perf_counter() - started)
        return min(times), result

    print(f"| question | rows | hunt, raw gzip | hunt --lake | DuckDB, lake | raw / lake |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, raw_sql, lake_sql, duck_sql in questions:
        t_raw, r_raw = best(raw, raw_sql)
        t_lake, r_lake = best(lake, lake_sql)
        t_duck, r_duck = best(duck, duck_sql)
        if r_lake != r_duck:
            sys.exit(f"{name}: hunt --lake and DuckDB differ ({len(r_lake)}, {len(r_duck)} rows)")
        if r_raw != r_lake:
            # A compacted lake holds each eventid once; CloudTrail delivers a few twice.
            print(f"<!-- {name}: the raw logs' answer differs (records delivered twice) -->")
        print(
            f"| {name} | {len(r_raw)} | {t_raw:.3f} s | {t_lake:.3f} s | {t_duck:.3f} s "
            f"| {t_raw / t_lake:.0f}x |"
        )


if __name__ == "__main__":
    main()
