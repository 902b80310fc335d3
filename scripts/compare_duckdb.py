#!/usr/bin/env python3
"""The README's speed table: the same gzip files, the same query (count by eventname), two
threads each. Usage: scripts/compare_duckdb.py DIR [TRAILHOUND_BINARY]. Needs `pip install duckdb`."""
import glob, gzip, subprocess, sys, time, zlib
from concurrent.futures import ThreadPoolExecutor

import duckdb

root = sys.argv[1]
binary = sys.argv[2] if len(sys.argv) > 2 else "target/release/trailhound"
files = sorted(glob.glob(f"{root}/AWSLogs/*/CloudTrail/*/*/*/*/*.json.gz"))
records = None

def best(f, n=3):
    times = []
    for _ in range(n):
        t = time.perf_counter(); out = f(); times.append(time.perf_counter() - t)
    return min(times), out

def duck(columns):
    con = duckdb.connect(config={"threads": 2})
    cols = "{'Records': 'STRUCT(" + columns + ")[]'}"
    q = f"""SELECT r.eventName, count(*) FROM (SELECT unnest(Records) AS r FROM read_json({files!r},
            columns={cols}, format='auto', records=true, maximum_object_size=268435456)) GROUP BY 1"""
    return con.execute(q).fetchall()

whole = ("eventVersion VARCHAR, userIdentity JSON, eventTime VARCHAR, eventSource VARCHAR, eventName VARCHAR, "
         "awsRegion VARCHAR, sourceIPAddress VARCHAR, userAgent VARCHAR, errorCode VARCHAR, errorMessage VARCHAR, "
         "requestParameters JSON, responseElements JSON, additionalEventData JSON, requestID VARCHAR, eventID VARCHAR, "
         "readOnly BOOLEAN, resources JSON, eventType VARCHAR, apiVersion VARCHAR, managementEvent BOOLEAN, "
         "recipientAccountId VARCHAR, serviceEventDetails JSON, sharedEventID VARCHAR, vpcEndpointId VARCHAR, "
         "vpcEndpointAccountId VARCHAR, eventCategory VARCHAR, addendum JSON, sessionCredentialFromConsole VARCHAR, "
         "tlsDetails JSON")

def inflate_all():
    def one(f):
        with open(f, "rb") as h:
            return len(zlib.decompress(h.read(), 31))
    with ThreadPoolExecutor(2) as pool:
        return sum(pool.map(one, files))

def trailhound():
    return subprocess.run([binary, "hunt", "--threads", "2", "--format", "csv",
                           "SELECT eventname, count(*) FROM cloudtrail GROUP BY 1", root],
                          check=True, capture_output=True).stdout

t_th, _ = best(trailhound)
t_fast, rows = best(lambda: duck("eventName VARCHAR"))
t_whole, _ = best(lambda: duck(whole))
t_zlib, body = best(inflate_all)
events = sum(n for _, n in rows)
print(f"{len(files)} files, {events} events, {body/1e6:.1f} MB decompressed, best of 3, 2 threads")
print(f"| reader | seconds | events/s | MB/s |\n|---|---:|---:|---:|")
for name, t in [("trailhound hunt", t_th), ("DuckDB read_json, eventName only", t_fast),
                ("DuckDB read_json, whole record", t_whole), ("zlib decompression alone (Python, 2 threads)", t_zlib)]:
    print(f"| {name} | {t:.3f} | {events/t:,.0f} | {body/1e6/t:,.0f} |")
