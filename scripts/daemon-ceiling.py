#!/usr/bin/env python3
"""The daemon's own ceiling: `trailhound run` working through a backlog, against an S3 and
SQS server fast enough not to be the limit (scripts/fast_aws.py; moto's SQS tops out near 30
messages/s with a large backlog).

    python3 scripts/daemon-ceiling.py BINARY DIR [--threads 1,2] [--pollers 2] [--batch 100]

For each combination of --threads, --pollers and --batch (comma-separated lists), it starts the
server with every `*.json.gz` under DIR in a bucket and one notification per object queued
(the backlog), starts the daemon on it (findings to a file, state in a redb file), and times it
until the queue is empty: every message read, examined, its findings written and deleted.

Reported per run: objects/s and events/s; the daemon's CPU time as cores busy and as events
per CPU-second (the figure to size a fleet with: it does not depend on what else shared the
machine); the server's CPU (when it is near one core, the server was the limit); and the
daemon's peak resident memory. A markdown table is printed at the end.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

from local_aws import free_port, metrics, start_fast_aws

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User plus system CPU time of a process, in seconds (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except OSError:
        return 0.0


def resident_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def one_run(binary, source, threads, pollers, batch, timeout):
    server, objects, env, sqs, queue = start_fast_aws(source)
    work = tempfile.mkdtemp(prefix="trailhound-ceiling-")
    listen = free_port()
    server_cpu_before = cpu_seconds(server.pid)
    started = time.time()
    daemon = subprocess.Popen(
        [binary, "run", "--queue-url", queue, "--sink", f"file:{work}/findings.jsonl",
         "--state", f"{work}/state.redb", "--listen", f"127.0.0.1:{listen}",
         "--threads", str(threads), "--pollers", str(pollers), "--batch-messages", str(batch)],
        env=env, stdout=subprocess.DEVNULL, stderr=open(f"{work}/daemon.log", "w"))
    peak = [0.0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], resident_mb(daemon.pid))
            time.sleep(0.25)

    threading.Thread(target=sample, daemon=True).start()
    cpu = 0.0
    while True:
        attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
        left = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
        cpu = cpu_seconds(daemon.pid) or cpu
        if left == 0:
            break
        if daemon.poll() is not None:
            raise SystemExit(f"the daemon exited ({daemon.returncode}); see {work}/daemon.log")
        if time.time() - started > timeout:
            raise SystemExit(f"gave up after {timeout} s with {left} messages left; see {work}/daemon.log")
        time.sleep(0.1)
    elapsed = time.time() - started
    m = metrics(listen)
    server_cpu = cpu_seconds(server.pid) - server_cpu_before
    stop.set()
    daemon.terminate()
    daemon.wait(timeout=60)
    server.terminate()
    server.wait()
    records = m.get("trailhound_records_total", 0)
    read = sum(v for k, v in m.items() if k.startswith("trailhound_objects_total") and 'outcome="read"' in k)
    if read < objects:
        raise SystemExit(f"only {read:.0f} of {objects} objects were read; see {work}/daemon.log")
    return {
        "threads": threads, "pollers": pollers, "batch": batch, "objects": objects,
        "records": records, "seconds": elapsed, "cpu": cpu, "server_cpu": server_cpu,
        "peak_mb": peak[0],
        "findings": sum(v for k, v in m.items() if k.startswith("trailhound_findings_total")),
        "batches": m.get("trailhound_batches_total", 0),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binary")
    parser.add_argument("source")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--pollers", default="2")
    parser.add_argument("--batch", default="100")
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    ints = lambda text: [int(x) for x in text.split(",") if x]
    rows = []
    for batch in ints(args.batch):
        for pollers in ints(args.pollers):
            for threads in ints(args.threads):
                r = one_run(args.binary, args.source, threads, pollers, batch, args.timeout)
                rows.append(r)
                print(f"threads {threads} pollers {pollers} batch {batch}: {r['objects']} objects, "
                      f"{r['records']:.0f} events in {r['seconds']:.1f} s, daemon CPU {r['cpu']:.1f} s, "
                      f"server CPU {r['server_cpu']:.1f} s, peak {r['peak_mb']:.0f} MB, "
                      f"{r['findings']:.0f} findings, {r['batches']:.0f} batches", file=sys.stderr, flush=True)
    print("| --threads | --pollers | --batch-messages | seconds | objects/s | events/s | objects per batch | daemon cores busy | events per daemon CPU-second | server cores busy | peak memory |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        s = r["seconds"]
        print(f"| {r['threads']} | {r['pollers']} | {r['batch']} | {s:.1f} | {r['objects'] / s:,.0f} | "
              f"{r['records'] / s:,.0f} | {r['objects'] / max(r['batches'], 1):.0f} | {r['cpu'] / s:.2f} | {r['records'] / max(r['cpu'], 1e-9):,.0f} | "
              f"{r['server_cpu'] / s:.2f} | {r['peak_mb']:.0f} MB |")


if __name__ == "__main__":
    main()
