#!/usr/bin/env python3
"""End-to-end check of `trailhound run`: an organisation's logs uploaded to a local S3 whose
notifications go to an SQS queue (with a dead-letter queue, maxReceiveCount 5) while the daemon
runs; the daemon is killed (SIGKILL) half-way through the uploads and started again.

    python3 scripts/daemon-e2e.py BINARY SOURCE_DIR [--kill-at 0.5] [--backlog] [--learning 0s]
                                    [--hostile] [--memory-budget 512MiB]

With --backlog every object is uploaded before the daemon starts, and it is killed once it has
read that fraction of them: in the middle of a full batch of messages rather than between
uploads.

With --hostile, objects written to hurt the reader go in among the genuine ones (into a copy of
SOURCE_DIR, so replay reads them too): records nested 1,000 deep and with duplicate keys, 32 MB
of tiny values (a parse of over 500 MB in one go), a 600 MB gzip bomb, a truncated gzip and a
body that is not JSON. The daemon runs with --memory-budget (512 MiB by default here) and must
not crash; its peak resident memory is reported.

SOURCE_DIR is what `trailhound simulate --out DIR` writes: log files under AWSLogs/ and
labels.json naming each attack's eventIDs. Reports, and exits 1 unless all hold:

* every labelled attack has its records in a finding;
* no finding id was written with records that are not a superset of its earlier versions
  (a reader keeping the last version of each id has each finding once);
* the queue and the dead-letter queue end empty;
* the findings' ids, and the eventIDs of each one's last version, are those `trailhound
  replay` gives for the same files (rules and statistics judged per batch against the whole
  run), listed where they differ.

Needs moto[server] and boto3 (pip install 'moto[server]').
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import gzip
import shutil
import zlib

import boto3

from local_aws import free_port, metrics, start_moto


def depth(sqs, queue):
    a = sqs.get_queue_attributes(
        QueueUrl=queue,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


def write_gzip(path, parts):
    """Writes the concatenation of `parts` (bytes, or (bytes, times)) gzipped, streamed."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    z = zlib.compressobj(1, zlib.DEFLATED, 31)
    with open(path, "wb") as f:
        for part in parts:
            data, times = part if isinstance(part, tuple) else (part, 1)
            for _ in range(times):
                f.write(z.compress(data))
        f.write(z.flush())


def add_hostile(source):
    """Hostile objects, in the delivery folder of the first genuine one; their names."""
    first = sorted(os.path.join(r, n) for r, _, ns in os.walk(source) for n in ns if n.endswith(".json.gz"))[0]
    folder, name = os.path.split(first)
    head = "_".join(name.split("_")[:4])  # <account>_CloudTrail_<region>_<time>

    def path(tag):
        return os.path.join(folder, f"{head}_{tag}.json.gz")

    account = name.split("_")[0]

    def record(i, extra):
        return ('{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AIDAHOSTILE",'
                f'"arn":"arn:aws:iam::{account}:user/mallory","accountId":"{account}",'
                '"accessKeyId":"AKIAHOSTILE0000000001","userName":"mallory"},'
                '"eventTime":"2026-10-05T10:00:00Z","eventSource":"cloudtrail.amazonaws.com",'
                '"eventName":"DescribeTrails","awsRegion":"us-east-1","sourceIPAddress":"203.0.113.9",'
                f'"userAgent":"aws-cli/2.15.0","eventID":"hostile-{i}","eventType":"AwsApiCall",'
                f'"recipientAccountId":"{account}"{extra}}}')

    deep = "[" * 1000 + "1" + "]" * 1000
    records = [record(0, f',"weird":{deep}'), record(1, ',"resources":5,"resources":[7]'),
               record(2, ',"userIdentity":"x","userIdentity":{"type":"Root"}'),
               record(3, f',"requestParameters":{{"deep":{"[" * 500 + "]" * 500}}},"odd":1,"odd":2')]
    written = []
    write_gzip(path("hostilerecordsxx"), ['{"Records":['.encode(), ",".join(records).encode(), b"]}"])
    written.append(path("hostilerecordsxx"))
    write_gzip(path("tinyvaluestinyvx"), [b'{"Records":[', (b"0," * (1 << 20), 16), b"0]}"])
    written.append(path("tinyvaluestinyvx"))
    write_gzip(path("gzipbombgzipbomb"), [b'{"Records":[]}', (b" " * (1 << 20), 600)])
    written.append(path("gzipbombgzipbomb"))
    with open(first, "rb") as f:
        whole = f.read()
    with open(path("truncatedtruncat"), "wb") as f:
        f.write(whole[: len(whole) // 2])
    written.append(path("truncatedtruncat"))
    with open(path("notjsonnotjsonno"), "wb") as f:
        f.write(gzip.compress(b"<html>AccessDenied</html>"))
    written.append(path("notjsonnotjsonno"))
    return written


def peak_resident(pid):
    """The process's peak resident memory (VmHWM) in MB, or None."""
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main():
    binary, source = sys.argv[1], sys.argv[2]
    hostile = "--hostile" in sys.argv
    budget = ["--memory-budget", "512MiB"]
    if "--memory-budget" in sys.argv:
        budget = ["--memory-budget", sys.argv[sys.argv.index("--memory-budget") + 1]]
    hostile_keys = []
    if hostile:
        copy = tempfile.mkdtemp()
        shutil.copytree(source, copy, dirs_exist_ok=True)
        source = copy
        hostile_keys = [p[p.index("AWSLogs/"):] for p in add_hostile(source)]
    kill_at = 0.5
    if "--kill-at" in sys.argv:
        kill_at = float(sys.argv[sys.argv.index("--kill-at") + 1])
    backlog = "--backlog" in sys.argv
    # Statistical detections learn for a week by default; `--learning 0s` makes a few days of
    # logs enough for them to report, so their findings are compared with replay's too.
    learning = []
    if "--learning" in sys.argv:
        learning = ["--learning", sys.argv[sys.argv.index("--learning") + 1]]
    labels = json.load(open(os.path.join(source, "labels.json")))
    moto, endpoint, env = start_moto()
    s3 = boto3.client("s3", endpoint_url=endpoint)
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    # Uploaded in the order CloudTrail delivers: by the time in the file name
    # (<account>_CloudTrail_<region>_<YYYYMMDDTHHmmZ>_<id>.json.gz), then the path.
    files = sorted(
        (
            os.path.join(root, n)
            for root, _, names in os.walk(source)
            for n in names
            if n.endswith(".json.gz")
        ),
        key=lambda p: (os.path.basename(p).split("_")[3:4], p),
    )

    dlq = sqs.create_queue(QueueName="notices-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName="notices",
        Attributes={
            "VisibilityTimeout": "120",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5}),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket="trail")
    s3.put_bucket_notification_configuration(
        Bucket="trail",
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    work = tempfile.mkdtemp()
    listen = free_port()
    log = open(f"{work}/daemon.log", "w")

    def start_daemon():
        # A short visibility so the messages the killed process held come back soon.
        d = subprocess.Popen(
            [binary, "run", "--queue-url", queue, "--sink", f"file:{work}/findings.jsonl",
             "--state", f"{work}/state.redb", "--listen", f"127.0.0.1:{listen}",
             "--visibility", "10s", "--log", "info", *learning, *budget],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        while not metrics(listen):
            if d.poll() is not None:
                sys.exit(f"the daemon exited at start; see {work}/daemon.log")
            time.sleep(0.1)
        return d

    def read_objects():
        return sum(v for k, v in metrics(listen).items()
                   if k.startswith("trailhound_objects_total") and 'outcome="read"' in k)

    started = time.time()
    killed_after = None
    if backlog:
        for path in files:
            with open(path, "rb") as f:
                s3.put_object(Bucket="trail", Key=path[path.index("AWSLogs/"):], Body=f.read())
        started = time.time()
        daemon = start_daemon()
        while read_objects() < len(files) * kill_at:
            time.sleep(0.05)
        n, before = read_objects(), metrics(listen)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        killed_after = (int(n),
                        before.get("trailhound_messages_deleted_total", 0),
                        before.get("trailhound_in_flight_messages", 0))
        daemon = start_daemon()
        files_to_upload = []
    else:
        daemon = start_daemon()
        files_to_upload = files
    for i, path in enumerate(files_to_upload):
        if killed_after is None and i >= len(files) * kill_at:
            # Killed while it works: wait until it has taken something in hand.
            while metrics(listen).get("trailhound_in_flight_messages", 0) == 0 and depth(sqs, queue) > 0:
                time.sleep(0.01)
            before = metrics(listen)
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
            killed_after = (i, before.get("trailhound_messages_deleted_total", 0),
                            before.get("trailhound_in_flight_messages", 0))
            daemon = start_daemon()
        key = path[path.index("AWSLogs/"):]
        with open(path, "rb") as f:
            s3.put_object(Bucket="trail", Key=key, Body=f.read())
    uploaded = time.time() - started
    if backlog:
        uploaded = 0.0
    quiet_since = None
    while True:
        if depth(sqs, queue) == 0:
            quiet_since = quiet_since or time.time()
            if time.time() - quiet_since > 3:
                break
        else:
            quiet_since = None
        if time.time() - started > 3600:
            print("gave up after an hour", file=sys.stderr)
            break
        time.sleep(0.5)
    elapsed = time.time() - started
    last = metrics(listen)
    alive = daemon.poll() is None
    resident = peak_resident(daemon.pid)
    daemon.send_signal(signal.SIGTERM)
    code = daemon.wait(timeout=60)
    dlq_depth, queue_depth = depth(sqs, dlq), depth(sqs, queue)
    moto.terminate()

    lines = [json.loads(l) for l in open(f"{work}/findings.jsonl")]
    versions = {}
    for f in lines:
        versions.setdefault(f["id"], []).append(set(f["service"]["additionalInfo"]["eventIds"]))
    # A statistical finding lists at most 200 records, the first in event time: one that holds
    # that many may swap a record for an earlier one that arrived late, as replay would list it.
    capped = [i for i, vs in versions.items()
              if any(not a <= b and len(b) == 200 for a, b in zip(vs, vs[1:]))]
    rewritten = [i for i, vs in versions.items()
                 if i not in capped and any(not a <= b for a, b in zip(vs, vs[1:]))]
    resent = sum(1 for vs in versions.values() for a, b in zip(vs, vs[1:]) if a == b)
    final = {i: vs[-1] for i, vs in versions.items()}
    found_events = set().union(*final.values()) if final else set()
    missed = []
    for attack in labels["attacks"]:
        events = set(attack["eventIds"])
        hit = events & found_events
        if not hit:
            missed.append(attack["id"])
        ids = [i for i, ev in final.items() if ev & events]
        print(f"  {'found ' if hit else 'MISSED'} {attack['id']}: {len(hit)}/{len(events)} events, in {len(ids)} findings")

    # The same files through replay, for comparison.
    replayed = subprocess.run(
        [binary, "replay", source, "--state", f"{work}/replay.redb", *learning, *budget],
        capture_output=True, text=True, env=env,
    )
    replay_events = {}
    for l in replayed.stdout.splitlines():
        if l.startswith("{"):
            f = json.loads(l)
            replay_events[f["id"]] = set(f["service"]["additionalInfo"]["eventIds"])
    replay_ids = set(replay_events)
    only_daemon = sorted(set(final) - replay_ids)
    only_replay = sorted(replay_ids - set(final))
    # The daemon's last version of each finding against replay's: the same records.
    other_records = sorted(i for i in replay_ids & set(final) if final[i] != replay_events[i])

    when = "uploaded before the daemon started" if backlog else f"uploads took {uploaded:.1f} s"
    print(f"objects            {len(files)}, {when}, all examined {elapsed:.1f} s after the first start")
    if killed_after:
        i, deleted, held = killed_after
        what = "objects read" if backlog else "uploads"
        print(f"killed (SIGKILL)   after {i} {what} ({deleted:.0f} messages deleted), holding {held:.0f} messages in work; restarted at once")
    print(f"after the restart  {last.get('trailhound_records_total', 0):.0f} records, "
          f"{last.get('trailhound_messages_deleted_total', 0):.0f} messages deleted, "
          f"duplicates skipped {sum(v for k, v in last.items() if 'duplicate' in k):.0f}")
    print(f"findings           {len(final)} distinct ids in {len(lines)} lines "
          f"({len(lines) - len(final) - resent} updates with more records, {resent} identical re-sends)")
    print(f"rewritten          {len(rewritten)} ids with records not a superset of an earlier version "
          f"({len(capped)} more listing the most records a finding lists, 200, where an earlier record "
          f"that arrived late took a later one's place)")
    print(f"attacks            {len(labels['attacks']) - len(missed)} of {len(labels['attacks'])} found")
    print(f"queue / DLQ        {queue_depth} / {dlq_depth} messages left; SIGTERM exit {code}"
          f"{'' if alive else ' (the daemon had died before it)'}")
    if hostile:
        errors = {k: v for k, v in last.items() if k.startswith("trailhound_errors_total")}
        print(f"hostile objects    {len(hostile_keys)} among the genuine ones; errors counted: "
              + ", ".join(f"{k[k.index('=') + 2:-2]} {v:.0f}" for k, v in sorted(errors.items())))
        print(f"memory             budget {budget[1]}; the daemon's peak resident memory "
              f"{resident:.0f} MB (since its last start)" if resident else "memory             not measured")
    print(f"against replay     {len(replay_ids)} ids from replay; {len(only_daemon)} only from the daemon, "
          f"{len(only_replay)} only from replay")
    print(f"records vs replay  {len(other_records)} of {len(replay_ids & set(final))} shared ids hold other "
          f"eventIDs in the daemon's last version than in replay's")
    by_id = {f["id"]: f for f in lines}
    for i in other_records[:10]:
        f = by_id[i]
        print(f"    other records: {f['service']['additionalInfo']['detection']}: daemon {len(final[i])}, "
              f"replay {len(replay_events[i])}")
    for i in only_daemon[:10]:
        f = by_id[i]
        print(f"    daemon only: {f['service']['additionalInfo']['detection']} {f['severity']} {f['title'][:70]}")
    replay_by_id = {json.loads(l)["id"]: json.loads(l) for l in replayed.stdout.splitlines() if l.startswith("{")}
    for i in only_replay[:10]:
        f = replay_by_id[i]
        print(f"    replay only: {f['service']['additionalInfo']['detection']} {f['severity']} {f['title'][:70]}")
    ok = (not missed and not rewritten and queue_depth == 0 and dlq_depth == 0 and code == 0 and alive
          and not only_daemon and not only_replay and not other_records)
    print("OK" if ok else f"FAILED; the daemon's log is {work}/daemon.log")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
