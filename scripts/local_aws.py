"""What the daemon scripts share: moto's server on a free loopback port, with the environment
that points the AWS SDK (trailhound's and boto3's) at it, and a running daemon's metrics."""

import os
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metrics(port):
    """The daemon's /metrics as {series: value}; empty while it is not listening."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def start_moto():
    """Starts moto's server; returns (process, endpoint, environment for a daemon). This
    process's own AWS_* variables are set too, for boto3."""
    port = free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL=endpoint,
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_EC2_METADATA_DISABLED="true",
    )
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    return moto, endpoint, env


def start_fast_aws(source):
    """Starts scripts/fast_aws.py with every log under `source` in a bucket and one notification
    per object queued (a backlog). Returns (process, objects queued, environment for a daemon,
    boto3 SQS client, queue URL)."""
    import boto3

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fast_aws.py"),
         "--port", str(port), "--load", source],
        stdout=subprocess.PIPE, text=True)
    ready = server.stdout.readline().split()
    if not ready or ready[0] != "ready":
        raise SystemExit("scripts/fast_aws.py did not start")
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_REGION="us-east-1",
               AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true")
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    queue = sqs.get_queue_url(QueueName="notices")["QueueUrl"]
    return server, int(ready[1]), env, sqs, queue
