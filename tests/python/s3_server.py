"""A real S3-compatible server (moto, from PyPI) on the loopback interface,
for tests that run Seglake on an `s3://` warehouse. The `moto` fixture in
conftest.py starts one per test session."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import boto3
import pyarrow.fs as pafs

import seglake_harness as h

ACCESS_KEY = SECRET_KEY = "testing"
REGION = "us-east-1"

# moto runs in its own process (so that its request handling never waits for
# this process's GIL); it prints its address and stops when stdin closes.
MOTO_MAIN = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(f"moto listening on {host}:{port}", flush=True)
sys.stdin.read()
server.stop()
"""


class Moto:
    def __init__(self, log_path):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MOTO_MAIN],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        reader = h.LineReader(self.proc.stdout, "moto")
        try:
            line = reader.next_line(time.monotonic() + h.STARTUP_TIMEOUT_S)
        except Exception:
            line = None
        if not line or not line.startswith("moto listening on "):
            self.stop()
            raise AssertionError(f"moto did not start (got {line!r}):\n{h.tail(log_path)}")
        self.address = line.removeprefix("moto listening on ")
        self.endpoint = f"http://{self.address}"

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=h.SHUTDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def env(self) -> dict[str, str]:
        """The AWS_* variables that point the seglake binary at this server."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
        }

    def boto(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
        )

    def new_bucket(self) -> str:
        name = f"seglake-{uuid.uuid4().hex[:12]}"
        self.boto().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str) -> list[str]:
        out = []
        for page in self.boto().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", [])]
        return sorted(out)

    def filesystem(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            region=REGION,
            scheme="http",
            endpoint_override=self.address,
        )


