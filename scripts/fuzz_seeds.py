#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, from real-shaped records.

usage: fuzz_seeds.py LOGS_DIR CORPUS_DIR [MORE_LOGS_DIR ...]

Reads every CloudTrail object (.json or .json.gz) under the log directories and writes, under
CORPUS_DIR/<target>/, one small file per seed: single records of each distinct event for the
decoder (plus a few whole objects), the policy documents and times those records carry, and
the message shapes S3, SNS and EventBridge put on a queue.
"""

import gzip
import hashlib
import json
import os
import sys


def objects(root):
    for dirpath, _, files in os.walk(root):
        for name in sorted(files):
            if name.endswith((".json.gz", ".json")):
                yield os.path.join(dirpath, name)


def records(path):
    raw = open(path, "rb").read()
    try:
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        return raw, json.loads(text).get("Records", [])
    except (OSError, ValueError, AttributeError):
        return raw, []


def write(corpus, target, data):
    if isinstance(data, str):
        data = data.encode()
    folder = os.path.join(corpus, target)
    os.makedirs(folder, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def policies(value):
    """Policy documents anywhere in a record's parameters, as text."""
    if isinstance(value, dict):
        if "Statement" in value:
            yield json.dumps(value)
        for v in value.values():
            yield from policies(v)
    elif isinstance(value, list):
        for v in value:
            yield from policies(v)
    elif isinstance(value, str) and '"Statement"' in value:
        yield value


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    roots, corpus = [sys.argv[1]] + sys.argv[3:], sys.argv[2]
    seen_events, whole, times = set(), 0, set()
    for root in roots:
        for path in objects(root):
            raw, recs = records(path)
            if whole < 8 and len(raw) < 16384:
                write(corpus, "fuzz_decode", raw)
                whole += 1
            for rec in recs:
                kind = (rec.get("eventSource"), rec.get("eventName"), rec.get("errorCode"))
                if kind not in seen_events:
                    seen_events.add(kind)
                    write(corpus, "fuzz_decode", json.dumps({"Records": [rec]}))
                if isinstance(rec.get("eventTime"), str):
                    times.add(rec["eventTime"])
                account = str(rec.get("recipientAccountId", "111122223333"))
                for doc in policies(rec.get("requestParameters")):
                    write(corpus, "fuzz_policy", f"{account}\n444455556666\n{doc}")
    for t in sorted(times)[:50]:
        write(corpus, "fuzz_time", t)
    for t in ["2024-05-01T12:34:56Z", "2024-05-01T12:34:56.123456Z", "2024-05-01T12:34:56+02:00",
              "2024-02-29T23:59:60Z", "9999-12-31T23:59:59.999999999-23:59"]:
        write(corpus, "fuzz_time", t)
    own = "111122223333"
    for doc in [
        {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                        "Resource": "arn:aws:s3:::b/*",
                        "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-abc"}}}]},
        {"Statement": {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::999988887777:root"]},
                       "Action": "kms:*", "Resource": "*"}},
        {"Statement": [{"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::x"}]},
        {"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*", "Resource": "*",
                        "Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:111122223333:*"}}}]},
    ]:
        write(corpus, "fuzz_policy", f"{own}\no-abc\n{json.dumps(doc)}")
    write(corpus, "fuzz_policy", "10.1.2.3\narn:aws:iam::*:role/deploy-*\n{}")
    write(corpus, "fuzz_policy", "2001:db8::1\ns3://bucket/key\naGVsbG8=")
    # Address lists (threat lists, trusted ranges), plain and STIX 2.1, are read by the same
    # target: the repository's examples.
    intel = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "intel")
    for name in sorted(os.listdir(intel)) if os.path.isdir(intel) else []:
        with open(os.path.join(intel, name), encoding="utf-8") as f:
            write(corpus, "fuzz_policy", f"198.51.100.66\n{own}\n{f.read()}")
    key = "AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/01/x_CloudTrail_us-east-1_20240501T1200Z_a+b%2Fc.json.gz"
    s3 = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                       "s3": {"bucket": {"name": "trail"}, "object": {"key": key, "size": 1234}}}]}
    write(corpus, "fuzz_envelope", json.dumps(s3))
    write(corpus, "fuzz_envelope", json.dumps({"Type": "Notification", "Message": json.dumps(s3)}))
    write(corpus, "fuzz_envelope", json.dumps(
        {"Type": "Notification", "Message": json.dumps({"s3Bucket": "trail", "s3ObjectKey": [key]})}))
    write(corpus, "fuzz_envelope", json.dumps(
        {"version": "0", "source": "aws.s3", "detail-type": "Object Created",
         "detail": {"bucket": {"name": "trail"}, "object": {"key": key, "size": 5}}}))
    write(corpus, "fuzz_envelope", json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}))
    write(corpus, "fuzz_envelope", key)
    for target in sorted(os.listdir(corpus)):
        print(f"{target}: {len(os.listdir(os.path.join(corpus, target)))} seeds")


if __name__ == "__main__":
    main()
