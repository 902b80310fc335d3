#!/usr/bin/env python3
"""A small S3 and SQS server on loopback, fast enough not to be the limit when measuring
`trailhound run` (moto's SQS scans its whole queue on every receive, so a backlog of 20,000
messages runs at a few dozen messages/s there).

It speaks the two protocols the AWS SDK uses for what the daemon calls, and nothing more:

* S3, path-style: GetObject (whole or one `Range: bytes=A-B`) and HeadObject
  (`GET|HEAD /BUCKET/KEY`), PutObject, DeleteObject(s) and ListObjectsV2 (`GET
  /BUCKET?list-type=2&prefix=...`, 1,000 keys a page): what the daemon reads logs with, and
  what a lake in S3 is written, read and merged with. Objects are held in memory.
* SQS, JSON protocol (`X-Amz-Target: AmazonSQS.*`): ReceiveMessage (long polls, visibility
  timeouts, ApproximateReceiveCount and SentTimestamp), DeleteMessage(Batch),
  ChangeMessageVisibility(Batch), SendMessage(Batch), CreateQueue, GetQueueUrl and
  GetQueueAttributes. Request signatures are not checked.

    python3 scripts/fast_aws.py --port PORT --bucket trail --queue notices --load DIR

`--load DIR` puts every `*.json.gz` under DIR in the bucket (keys from `AWSLogs/` on) and one S3
`ObjectCreated:Put` notification per object in the queue, in key order: a backlog. The queue's
URL is `http://127.0.0.1:PORT/000000000000/QUEUE`. It prints `ready N` once listening.

One process, one thread (asyncio); its CPU time is reported by the measuring script beside
the daemon's, so a run where the server was the limit can be told apart.
"""

import argparse
import asyncio
import bisect
import hashlib
import heapq
import json
import os
import sys
import time
import urllib.parse
import uuid
from email.utils import formatdate
from xml.sax.saxutils import escape

ACCOUNT = "000000000000"


class Queue:
    """Messages by id; visible ones in order; in-flight ones by receipt handle."""

    def __init__(self, name, url):
        self.name = name
        self.url = url
        self.messages = {}  # id -> message dict
        self.visible = []  # heap of (order, id)
        self.order = 0
        self.in_flight = {}  # receipt -> id
        self.deadlines = []  # heap of (visible again at, receipt)
        self.arrived = asyncio.Event()

    def send(self, body):
        mid = str(uuid.uuid4())
        self.messages[mid] = {
            "id": mid,
            "body": body,
            "md5": hashlib.md5(body.encode()).hexdigest(),
            "sent": int(time.time() * 1000),
            "receives": 0,
            "receipt": None,
        }
        self._show(mid)
        return mid

    def _show(self, mid):
        self.order += 1
        heapq.heappush(self.visible, (self.order, mid))
        self.arrived.set()

    def _expire(self):
        now = time.monotonic()
        while self.deadlines and self.deadlines[0][0] <= now:
            _, receipt = heapq.heappop(self.deadlines)
            mid = self.in_flight.get(receipt)
            # A receipt whose visibility was extended has a later deadline in the heap too.
            if mid is not None and self.messages[mid]["until"] <= now:
                del self.in_flight[receipt]
                self.messages[mid]["receipt"] = None
                self._show(mid)

    def take(self, most, visibility):
        self._expire()
        out = []
        while self.visible and len(out) < most:
            _, mid = heapq.heappop(self.visible)
            m = self.messages.get(mid)
            if m is None or m["receipt"] is not None:
                continue
            m["receives"] += 1
            m["receipt"] = f"{mid}:{m['receives']}:{uuid.uuid4().hex[:8]}"
            self.in_flight[m["receipt"]] = mid
            m["until"] = time.monotonic() + visibility
            heapq.heappush(self.deadlines, (m["until"], m["receipt"]))
            out.append(m)
        if not self.visible:
            self.arrived.clear()
        return out

    def delete(self, receipt):
        mid = self.in_flight.pop(receipt, None)
        if mid is None:
            return False
        self.messages.pop(mid, None)
        return True

    def change_visibility(self, receipt, seconds):
        mid = self.in_flight.get(receipt)
        if mid is None:
            return False
        if seconds <= 0:
            del self.in_flight[receipt]
            self.messages[mid]["receipt"] = None
            self._show(mid)
        else:
            self.messages[mid]["until"] = time.monotonic() + seconds
            heapq.heappush(self.deadlines, (self.messages[mid]["until"], receipt))
        return True


class Server:
    def __init__(self, port):
        self.port = port
        self.objects = {}  # (bucket, key) -> (body, etag, modified)
        self.keys = {}  # bucket -> its keys, sorted (for listing)
        self.queues = {}  # name -> Queue
        self.requests = 0

    def queue_url(self, name):
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}/{name}"

    def queue(self, name):
        if name not in self.queues:
            self.queues[name] = Queue(name, self.queue_url(name))
        return self.queues[name]

    def by_url(self, url):
        return self.queues.get((url or "").rstrip("/").rsplit("/", 1)[-1])

    def put(self, bucket, key, body):
        if (bucket, key) not in self.objects:
            bisect.insort(self.keys.setdefault(bucket, []), key)
        self.objects[(bucket, key)] = (body, hashlib.md5(body).hexdigest(), time.time())

    def delete(self, bucket, key):
        if self.objects.pop((bucket, key), None) is not None:
            keys = self.keys[bucket]
            del keys[bisect.bisect_left(keys, key)]

    def load(self, bucket, queue, directory):
        q = self.queue(queue)
        paths = []
        for root, _, names in os.walk(directory):
            paths += [os.path.join(root, n) for n in names if n.endswith(".json.gz")]
        keyed = sorted((p[p.index("AWSLogs/"):], p) for p in paths if "AWSLogs/" in p)
        for key, path in keyed:
            with open(path, "rb") as f:
                body = f.read()
            self.put(bucket, key, body)
            q.send(json.dumps({"Records": [{
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                       "object": {"key": urllib.parse.quote_plus(key, safe="/"),
                                  "size": len(body)}},
            }]}))
        return len(keyed)

    # --- HTTP ---

    async def serve(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0") or 0)
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    await writer.drain()
                body = await reader.readexactly(length) if length else b""
                self.requests += 1
                status, out_headers, payload = await self.route(method, target, headers, body)
                text = [f"HTTP/1.1 {status}", f"Content-Length: {len(payload)}"]
                text += [f"{k}: {v}" for k, v in out_headers]
                writer.write(("\r\n".join(text) + "\r\n\r\n").encode() + (payload if method != "HEAD" else b""))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def route(self, method, target, headers, body):
        action = headers.get("x-amz-target", "")
        if action.startswith("AmazonSQS."):
            return await self.sqs(action[len("AmazonSQS."):], json.loads(body or b"{}"))
        return self.s3(method, target, body, headers)

    # --- S3 ---

    def s3(self, method, target, body, headers):
        split = urllib.parse.urlsplit(target)
        parts = split.path.lstrip("/").split("/", 1)
        if len(parts) < 2 or not parts[1]:
            if method == "PUT":
                return "200 OK", [], b""
            query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
            if method == "GET" and query.get("list-type") == ["2"]:
                return self.list_objects(parts[0], query)
            if method == "POST" and "delete" in query:
                return self.delete_objects(parts[0], body)
            return s3_error("501 Not Implemented", "NotImplemented", "only objects are served")
        bucket, key = parts[0], urllib.parse.unquote(parts[1])
        if method == "PUT":
            self.put(bucket, key, body)
            return "200 OK", [("ETag", f'"{self.objects[(bucket, key)][1]}"')], b""
        if method == "DELETE":
            self.delete(bucket, key)
            return "204 No Content", [], b""
        found = self.objects.get((bucket, key))
        if found is None:
            return s3_error("404 Not Found", "NoSuchKey", "The specified key does not exist.")
        data, etag, modified = found
        out = [("ETag", f'"{etag}"'), ("Last-Modified", formatdate(modified, usegmt=True)),
               ("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes")]
        wanted = headers.get("range", "")
        if method == "GET" and wanted.startswith("bytes="):
            first, _, last = wanted[len("bytes="):].partition("-")
            if first:
                start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
            else:
                start, end = max(len(data) - int(last), 0), len(data) - 1
            if start > end:
                return s3_error("416 Range Not Satisfiable", "InvalidRange", wanted)
            out.append(("Content-Range", f"bytes {start}-{end}/{len(data)}"))
            return "206 Partial Content", out, data[start:end + 1]
        if method in ("GET", "HEAD"):
            return "200 OK", out, data
        return s3_error("405 Method Not Allowed", "MethodNotAllowed", method)

    def delete_objects(self, bucket, body):
        """DeleteObjects: `<Delete><Object><Key>...</Key></Object>...</Delete>`."""
        import xml.etree.ElementTree as ET

        deleted = []
        for element in ET.fromstring(body).iter():
            if element.tag.rsplit("}", 1)[-1] == "Key" and element.text is not None:
                self.delete(bucket, element.text)
                deleted.append(f"<Deleted><Key>{escape(element.text)}</Key></Deleted>")
        out = ('<?xml version="1.0" encoding="UTF-8"?>'
               '<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
               + "".join(deleted) + "</DeleteResult>")
        return "200 OK", [("Content-Type", "application/xml")], out.encode()

    def list_objects(self, bucket, query):
        prefix = query.get("prefix", [""])[0]
        after = query.get("continuation-token", query.get("start-after", [""]))[0]
        most = min(int(query.get("max-keys", ["1000"])[0]), 1000)
        delimiter = query.get("delimiter", [""])[0]
        keys = self.keys.get(bucket, [])
        at = bisect.bisect_right(keys, after) if after >= prefix else bisect.bisect_left(keys, prefix)
        if delimiter and after.endswith(delimiter) and after >= prefix:
            at = bisect.bisect_left(keys, after[:-1] + chr(ord(after[-1]) + 1))
        page, folders = [], []
        while at < len(keys) and keys[at].startswith(prefix) and len(page) + len(folders) <= most:
            rest = keys[at][len(prefix):]
            if delimiter and delimiter in rest:
                folder = prefix + rest[:rest.index(delimiter) + len(delimiter)]
                folders.append(folder)
                # Past every key under that folder.
                at = bisect.bisect_left(keys, folder[:-1] + chr(ord(folder[-1]) + 1))
                continue
            page.append(keys[at])
            at += 1
        more = len(page) + len(folders) > most
        if more:
            # The last one taken goes to the next page.
            if folders and (not page or folders[-1] > page[-1]):
                folders.pop()
            else:
                page.pop()
        items = [f"<CommonPrefixes><Prefix>{escape(f)}</Prefix></CommonPrefixes>" for f in folders]
        for key in page:
            data, etag, modified = self.objects[(bucket, key)]
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(modified))
            stamp += f".{int(modified * 1000) % 1000:03d}Z"
            items.append(f"<Contents><Key>{escape(key)}</Key><LastModified>{stamp}</LastModified>"
                         f"<ETag>&quot;{etag}&quot;</ETag><Size>{len(data)}</Size>"
                         "<StorageClass>STANDARD</StorageClass></Contents>")
        body = ('<?xml version="1.0" encoding="UTF-8"?>'
                '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"
                f"<KeyCount>{len(page)}</KeyCount><MaxKeys>{most}</MaxKeys>"
                f"<IsTruncated>{'true' if more else 'false'}</IsTruncated>"
                + (f"<NextContinuationToken>{escape(max(page[-1:] + folders[-1:]))}</NextContinuationToken>"
                   if more else "")
                + "".join(items) + "</ListBucketResult>")
        return "200 OK", [("Content-Type", "application/xml")], body.encode()

    # --- SQS ---

    async def sqs(self, action, req):
        if action == "CreateQueue":
            return sqs_ok({"QueueUrl": self.queue(req["QueueName"]).url})
        if action == "GetQueueUrl":
            if req.get("QueueName") not in self.queues:
                return sqs_error("QueueDoesNotExist", "no such queue")
            return sqs_ok({"QueueUrl": self.queue_url(req["QueueName"])})
        q = self.by_url(req.get("QueueUrl"))
        if q is None:
            return sqs_error("QueueDoesNotExist", "The specified queue does not exist.")
        if action == "ReceiveMessage":
            most = max(1, min(10, int(req.get("MaxNumberOfMessages", 1))))
            visibility = int(req.get("VisibilityTimeout", 30))
            deadline = time.monotonic() + min(20, int(req.get("WaitTimeSeconds", 0)))
            got = q.take(most, visibility)
            while not got and time.monotonic() < deadline:
                try:
                    await asyncio.wait_for(q.arrived.wait(), timeout=min(0.2, max(0.0, deadline - time.monotonic())))
                except asyncio.TimeoutError:
                    pass
                got = q.take(most, visibility)
            return sqs_ok({"Messages": [{
                "MessageId": m["id"],
                "ReceiptHandle": m["receipt"],
                "MD5OfBody": m["md5"],
                "Body": m["body"],
                "Attributes": {"ApproximateReceiveCount": str(m["receives"]),
                               "SentTimestamp": str(m["sent"])},
            } for m in got]} if got else {})
        if action == "DeleteMessage":
            q.delete(req.get("ReceiptHandle", ""))
            return sqs_ok({})
        if action == "DeleteMessageBatch":
            # As SQS does, deleting a message already gone (or handed out again) succeeds.
            for e in req.get("Entries", []):
                q.delete(e.get("ReceiptHandle", ""))
            return sqs_ok({"Successful": [{"Id": e["Id"]} for e in req.get("Entries", [])], "Failed": []})
        if action == "ChangeMessageVisibility":
            if not q.change_visibility(req.get("ReceiptHandle", ""), int(req.get("VisibilityTimeout", 0))):
                return sqs_error("ReceiptHandleIsInvalid", "the receipt handle is not in flight")
            return sqs_ok({})
        if action == "ChangeMessageVisibilityBatch":
            ok, failed = [], []
            for e in req.get("Entries", []):
                if q.change_visibility(e.get("ReceiptHandle", ""), int(e.get("VisibilityTimeout", 0))):
                    ok.append({"Id": e["Id"]})
                else:
                    failed.append({"Id": e["Id"], "Code": "ReceiptHandleIsInvalid", "SenderFault": True,
                                   "Message": "the receipt handle is not in flight"})
            return sqs_ok({"Successful": ok, "Failed": failed})
        if action == "SendMessage":
            body = req.get("MessageBody", "")
            return sqs_ok({"MessageId": q.send(body), "MD5OfMessageBody": hashlib.md5(body.encode()).hexdigest()})
        if action == "SendMessageBatch":
            ok = []
            for e in req.get("Entries", []):
                body = e.get("MessageBody", "")
                ok.append({"Id": e["Id"], "MessageId": q.send(body),
                           "MD5OfMessageBody": hashlib.md5(body.encode()).hexdigest()})
            return sqs_ok({"Successful": ok, "Failed": []})
        if action == "GetQueueAttributes":
            q._expire()
            return sqs_ok({"Attributes": {
                "QueueArn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:{q.name}",
                "ApproximateNumberOfMessages": str(len(q.messages) - len(q.in_flight)),
                "ApproximateNumberOfMessagesNotVisible": str(len(q.in_flight)),
            }})
        return sqs_error("InvalidAction", f"{action} is not served here")


def sqs_ok(doc):
    return "200 OK", [("Content-Type", "application/x-amz-json-1.0")], json.dumps(doc).encode()


def sqs_error(code, message):
    doc = {"__type": f"com.amazonaws.sqs#{code}", "message": message}
    return ("400 Bad Request",
            [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-query-error", f"AWS.SimpleQueueService.{code};Sender")],
            json.dumps(doc).encode())


def s3_error(status, code, message):
    body = f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return status, [("Content-Type", "application/xml")], body.encode()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bucket", default="trail")
    parser.add_argument("--queue", default="notices")
    parser.add_argument("--load", metavar="DIR", help="put DIR's logs in the bucket and notify the queue of each")
    args = parser.parse_args()
    server = Server(args.port)
    server.queue(args.queue)
    loaded = server.load(args.bucket, args.queue, args.load) if args.load else 0
    listener = await asyncio.start_server(server.serve, "127.0.0.1", args.port, limit=1 << 20, backlog=512)
    print(f"ready {loaded}", flush=True)
    async with listener:
        await listener.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
