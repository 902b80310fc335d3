#!/usr/bin/env python3
"""The lake end to end, as issue 18 judges it: an organisation's logs read by the daemon into a
lake while `lake compact` runs over and over, the daemon killed (SIGKILL) part-way and started
again, then the lake counted with `hunt --lake` and DuckDB against `hunt` over the raw logs.

    python3 scripts/lake-e2e.py BINARY SOURCE_DIR [--kill-at 0.5] [--compact-every 3]
                                [--threads 2] [--keep DIR] [--s3]

With `--s3` the lake is `s3://lake/trailhound` on the same server (written by the daemon,
merged by `lake compact s3://...`, counted by `hunt --lake s3://...`), and copied down at the
end for DuckDB.

SOURCE_DIR is what `trailhound simulate --out DIR` writes. The daemon reads it from
scripts/fast_aws.py (every object in a bucket, one notification per object queued: a backlog),
because moto's SQS slows to a few dozen messages/s with a backlog this size.

Checks, and exits 1 unless all hold:

* every `lake compact` run while the daemon wrote exited 0;
* after the daemon has emptied the queue, before a last merge: the lake's distinct eventids
  are the raw logs' distinct eventids (none lost), and its rows are no more than the raw logs'
  rows (nothing written twice: a redelivered object's file replaces itself, and a merged
  object's file is not written again);
* after a last `lake compact`: rows = distinct eventids = the raw logs' distinct eventids, by
  `hunt --lake` and by DuckDB, and the same counts per account and per event source.

Needs boto3 and duckdb (pip install boto3 duckdb).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from local_aws import free_port, metrics, start_fast_aws


def hunt(binary, *args, env=None):
    out = subprocess.run([binary, "hunt", "--format", "csv", *args], capture_output=True,
                         text=True, check=False, env=env)
    if out.returncode != 0:
        sys.exit(f"hunt {' '.join(args[:2])} failed: {out.stderr}")
    return sorted(out.stdout.strip().splitlines()[1:])


def copy_down(env, bucket, prefix, directory):
    """Copies every object under `prefix` in `bucket` of the server to `directory`."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            path = os.path.join(directory, item["Key"][len(prefix):])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binary")
    parser.add_argument("source")
    parser.add_argument("--kill-at", type=float, default=0.5,
                        help="kill the daemon once it has read this fraction of the objects")
    parser.add_argument("--compact-every", type=float, default=3.0,
                        help="seconds between the end of one `lake compact` and the next")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--keep", help="write the lake and logs here (kept) instead of a temporary directory")
    parser.add_argument("--s3", action="store_true", help="keep the lake in the server's S3")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)

    work = args.keep or tempfile.mkdtemp(prefix="trailhound-lake-e2e-")
    os.makedirs(work, exist_ok=True)
    lake = os.path.join(work, "lake")
    shutil.rmtree(lake, ignore_errors=True)

    server, objects, env, sqs, queue = start_fast_aws(args.source)
    local = lake
    if args.s3:
        lake = "s3://lake/trailhound"
    print(f"{objects} objects queued; lake {lake}", file=sys.stderr, flush=True)

    def start_daemon(n):
        listen = free_port()
        daemon = subprocess.Popen(
            [binary, "run", "--queue-url", queue, "--sink", f"file:{work}/findings.jsonl",
             "--state", f"{work}/state.redb", "--lake", lake, "--listen", f"127.0.0.1:{listen}",
             "--threads", str(args.threads), "--visibility", "20s"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(f"{work}/daemon-{n}.log", "w"))
        return daemon, listen

    # `lake compact` over and over while the daemon writes.
    done = threading.Event()
    compactions = []

    def compact_loop():
        while not done.is_set():
            if args.s3 or os.path.isdir(lake):
                started = time.time()
                out = subprocess.run([binary, "lake", "compact", lake], capture_output=True,
                                     text=True, check=False, env=env)
                if args.s3 and "nothing there" in out.stderr:
                    done.wait(args.compact_every)
                    continue
                compactions.append((out.returncode, time.time() - started, out.stderr[-2000:]))
            done.wait(args.compact_every)

    compactor = threading.Thread(target=compact_loop)
    compactor.start()

    started = time.time()
    daemon, listen = start_daemon(1)
    killed = False
    left = objects
    while True:
        if not killed:
            m = metrics(listen)
            read = sum(v for k, v in m.items()
                       if k.startswith("trailhound_objects_total") and 'outcome="read"' in k)
            if read >= args.kill_at * objects:
                daemon.send_signal(signal.SIGKILL)
                daemon.wait()
                killed = True
                print(f"killed the daemon (SIGKILL) after {read:.0f} objects read, "
                      f"{time.time() - started:.1f} s", file=sys.stderr, flush=True)
                daemon, listen = start_daemon(2)
        attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
        left = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
        if left == 0 and killed:
            break
        if daemon.poll() is not None:
            sys.exit(f"the daemon exited ({daemon.returncode}); see {work}/daemon-*.log")
        if time.time() - started > args.timeout:
            sys.exit(f"gave up after {args.timeout} s with {left} messages left")
        time.sleep(0.2)
    elapsed = time.time() - started
    m = metrics(listen)
    daemon.terminate()
    daemon.wait(timeout=60)
    done.set()
    compactor.join()
    print(f"queue empty after {elapsed:.1f} s; the second daemon wrote "
          f"{m.get('trailhound_lake_files_total', 0):.0f} lake files; "
          f"{len(compactions)} compactions ran meanwhile "
          f"({sum(t for _, t, _ in compactions):.1f} s in all)", file=sys.stderr, flush=True)

    failures = []
    for code, _, stderr in compactions:
        if code != 0:
            failures.append(f"a `lake compact` exited {code}: {stderr.strip()[-400:]}")

    count = "SELECT count(*), count(DISTINCT eventid) FROM cloudtrail"
    raw_rows, raw_distinct = map(int, hunt(binary, "--threads", "2", count, args.source)[0].split(","))
    rows, distinct = map(int, hunt(binary, "--lake", lake, count, env=env)[0].split(","))
    print(f"raw logs: {raw_rows} rows, {raw_distinct} distinct eventids", file=sys.stderr)
    print(f"lake before the last merge: {rows} rows, {distinct} distinct eventids", file=sys.stderr)
    if distinct != raw_distinct:
        failures.append(f"the lake holds {distinct} distinct eventids, the raw logs {raw_distinct}")
    if rows > raw_rows:
        failures.append(f"the lake holds {rows} rows, more than the raw logs' {raw_rows}")

    started = time.time()
    out = subprocess.run([binary, "lake", "compact", lake], capture_output=True, text=True,
                         check=False, env=env)
    if out.returncode != 0:
        failures.append(f"the last `lake compact` exited {out.returncode}: {out.stderr[-400:]}")
    print(f"last merge: {time.time() - started:.1f} s", file=sys.stderr)

    rows, distinct = map(int, hunt(binary, "--lake", lake, count, env=env)[0].split(","))
    lake_by = hunt(binary, "--lake", lake, "SELECT recipientaccountid, eventsource, "
                   "count(DISTINCT eventid) FROM cloudtrail GROUP BY 1, 2", env=env)
    if args.s3:
        copy_down(env, "lake", "trailhound/", local)
    server.terminate()
    server.wait()
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE VIEW cloudtrail AS SELECT * FROM read_parquet("
                f"'{local}/cloudtrail/*/*/*/*.parquet', hive_partitioning = true)")
    duck_rows, duck_distinct = con.sql(count).fetchall()[0]
    print(f"lake after it: hunt --lake {rows} rows, {distinct} distinct; "
          f"DuckDB {duck_rows} rows, {duck_distinct} distinct", file=sys.stderr)
    if not rows == distinct == duck_rows == duck_distinct == raw_distinct:
        failures.append("after the last merge the counts differ (each should be the raw logs' "
                        f"{raw_distinct} distinct eventids)")

    by = ("SELECT recipientaccountid, eventsource, count(DISTINCT eventid) FROM cloudtrail "
          "GROUP BY 1, 2")
    raw_by = hunt(binary, "--threads", "2", by, args.source)
    duck_by = sorted(",".join(str(v) for v in row) for row in con.sql(by).fetchall())
    if not raw_by == lake_by == duck_by:
        failures.append(f"counts by account and event source differ: raw {len(raw_by)} groups, "
                        f"hunt --lake {len(lake_by)}, DuckDB {len(duck_by)}")
    else:
        print(f"counts by account and event source agree ({len(raw_by)} groups)", file=sys.stderr)

    if failures:
        for f in failures:
            print(f"FAIL: {f}", file=sys.stderr)
        sys.exit(1)
    print("ok", file=sys.stderr)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
