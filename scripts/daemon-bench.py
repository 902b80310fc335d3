#!/usr/bin/env python3
"""End-to-end measurement of `trailhound run` against moto's S3 and SQS server on loopback.

Uploads every log file under SOURCE to a bucket whose notifications go to a queue while the
daemon runs, and reports events/s from the first upload until every object was read, the
notification-to-finding lag the daemon measured, its resident memory over the run, and, beside
it, the ceiling of the server itself: how fast it takes as many messages (1,000 at most) through
send, receive and delete with nothing else to do.

    python3 scripts/daemon-bench.py BINARY SOURCE_DIR [--backlog]

With --backlog every object is uploaded (and notified) before the daemon starts, and the clock
runs from its start: how fast it works through a queue, not how fast uploads arrive.

Needs moto[server] and boto3 (pip install 'moto[server]').
"""

import os
import subprocess
import sys
import tempfile
import threading
import time

import boto3

from local_aws import free_port, metrics, start_moto


def main():
    binary, source = sys.argv[1], sys.argv[2]
    backlog = "--backlog" in sys.argv[3:]
    moto, endpoint, env = start_moto()
    s3 = boto3.client("s3", endpoint_url=endpoint)
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    files = []
    for root, _, names in os.walk(source):
        for n in names:
            if n.endswith(".json.gz"):
                files.append(os.path.join(root, n))
    files.sort()

    # The server's own ceiling: as many messages (1,000 at most) through send, receive, delete.
    ceiling_q = sqs.create_queue(QueueName="ceiling")["QueueUrl"]
    probe = min(len(files), 1000)
    started = time.time()
    for i in range(0, probe, 10):
        sqs.send_message_batch(
            QueueUrl=ceiling_q,
            Entries=[{"Id": str(j), "MessageBody": "x"} for j in range(min(10, probe - i))],
        )
    got = 0
    while got < probe:
        r = sqs.receive_message(QueueUrl=ceiling_q, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        ms = r.get("Messages", [])
        if ms:
            sqs.delete_message_batch(
                QueueUrl=ceiling_q,
                Entries=[{"Id": str(j), "ReceiptHandle": m["ReceiptHandle"]} for j, m in enumerate(ms)],
            )
        got += len(ms)
    ceiling = probe / (time.time() - started)

    queue = sqs.create_queue(QueueName="notices")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket="trail")
    s3.put_bucket_notification_configuration(
        Bucket="trail",
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    work = tempfile.mkdtemp()
    listen = free_port()
    rss = []
    stop = threading.Event()
    state = {}

    def start_daemon():
        state["daemon"] = subprocess.Popen(
            [binary, "run", "--queue-url", queue, "--sink", f"file:{work}/findings.jsonl",
             "--state", f"{work}/state.redb", "--listen", f"127.0.0.1:{listen}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(f"{work}/daemon.log", "w"),
        )

        def sample():
            while not stop.is_set():
                try:
                    with open(f"/proc/{state['daemon'].pid}/status") as f:
                        for line in f:
                            if line.startswith("VmRSS:"):
                                rss.append(int(line.split()[1]) / 1024)
                except OSError:
                    pass
                time.sleep(0.5)

        threading.Thread(target=sample, daemon=True).start()
        while not metrics(listen):
            time.sleep(0.1)

    if not backlog:
        start_daemon()
    stored = 0
    started = time.time()
    for path in files:
        key = path[path.index("AWSLogs/"):]
        with open(path, "rb") as f:
            body = f.read()
        stored += len(body)
        s3.put_object(Bucket="trail", Key=key, Body=body)
    uploaded = time.time() - started
    if backlog:
        start_daemon()
        started = time.time()
    daemon = state["daemon"]
    m = {}
    while True:
        m = metrics(listen)
        read = sum(v for k, v in m.items() if k.startswith("trailhound_objects_total") and 'outcome="read"' in k)
        if read >= len(files):
            break
        if time.time() - started > 1800:
            print("gave up after 30 minutes", file=sys.stderr)
            break
        time.sleep(0.2)
    elapsed = time.time() - started
    stop.set()
    daemon.terminate()
    daemon.wait(timeout=60)
    moto.terminate()
    records = m.get("trailhound_records_total", 0)
    findings = sum(v for k, v in m.items() if k.startswith("trailhound_findings_total"))
    print(f"objects            {len(files)} ({stored / 1e6:.1f} MB stored), uploads took {uploaded:.1f} s")
    print(f"records            {records:.0f}, findings {findings:.0f}")
    print(f"end to end         {elapsed:.1f} s: {records / elapsed:,.0f} events/s, {len(files) / elapsed:.0f} objects/s")
    print(f"server ceiling     {ceiling:.0f} messages/s through send, receive and delete alone")
    print(f"last batch lag     notification to findings out {m.get('trailhound_notification_lag_seconds', 0):.2f} s")
    print(f"daemon batches     {m.get('trailhound_batches_total', 0):.0f}, examining {m.get('trailhound_batch_seconds_total', 0):.1f} s in all")
    if rss:
        third = max(1, len(rss) // 3)
        print(f"resident memory    first third max {max(rss[:third]):.0f} MB, last third max {max(rss[-third:]):.0f} MB, peak {max(rss):.0f} MB")


if __name__ == "__main__":
    main()
