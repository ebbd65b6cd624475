"""A real S3-compatible object store (SeaweedFS's ``weed server -s3``, built by build_seaweedfs.sh) on
free loopback ports, with one bucket and one throwaway identity, in a temporary directory.

Clients reach it three ways, each given by a method here:
- delta-rs: :meth:`ObjectStore.storage_options` (``s3://`` URIs);
- Spark (S3A, ``s3a://`` URIs): :meth:`ObjectStore.spark_conf` when building a session or submitting,
  :meth:`ObjectStore.hadoop_conf` to set on a running session (``spark.conf.set``);
- the credentials themselves: :data:`ACCESS_KEY` / :data:`SECRET_KEY`, which the JVMs read from the
  environment (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, see :func:`credentials_env`).
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from jobs.config import cache_dir
from tests.services.ports import free_port
from tests.services.processes import log_tail, stop_service

log = logging.getLogger(__name__)

BUCKET = "iomt"
REGION = "us-east-1"
# A throwaway identity of a throwaway server on loopback; the server refuses any other key.
ACCESS_KEY = "iomt-ad-test-access-key"
SECRET_KEY = "iomt-ad-test-secret-key"

# Small volumes, few of them, two per growth step: weed shares a 2-core machine with Kafka, Spark
# and InfluxDB in the tests (defaults: 30 GB volumes, 7 per growth step, a 15 s allocation hold).
VOLUME_SIZE_LIMIT_MB = 64
MAX_VOLUMES = 16
MASTER_TOML = """\
[master.volume_growth]
copy_1 = 2
copy_2 = 1
copy_3 = 1
copy_other = 1
allocation_deferral = "0s"
"""


def weed_binary() -> Path:
    cache = cache_dir()
    found = sorted((cache / "seaweedfs").glob("*/weed"))
    if not found:
        raise FileNotFoundError(f"no weed under {cache / 'seaweedfs'}: run `make setup` "
                                "(tests/services/build_seaweedfs.sh)")
    return found[-1]


def credentials_env() -> dict[str, str]:
    """The environment that gives a client (a Spark JVM and its executors, delta-rs, any AWS SDK) the
    store's credentials, and keeps it from asking an EC2 metadata service."""
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_EC2_METADATA_DISABLED": "true"}


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class ObjectStore:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    def __init__(self, work_dir: Path | None = None, bucket: str = BUCKET) -> None:
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="iomt-seaweedfs-"))
        self._owns_work_dir = work_dir is None  # a temporary directory of its own: removed on stop
        self.bucket = bucket
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ what clients need
    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def uri(self, path: str, scheme: str = "s3") -> str:
        """``s3://bucket/path`` (delta-rs, pyarrow); ``scheme="s3a"`` for Spark."""
        return f"{scheme}://{self.bucket}/{path.lstrip('/')}"

    def storage_options(self) -> dict[str, str]:
        """delta-rs's storage options for this store. No ``AWS_S3_ALLOW_UNSAFE_RENAME``: delta-rs (1.x)
        commits with a conditional PUT (``If-None-Match: *``), which this server honours, so concurrent
        delta-rs writers cannot overwrite each other's commits (tests/integration/test_object_store.py);
        the flag changes nothing there."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
        }

    def hadoop_conf(self) -> dict[str, str]:
        """S3A's settings for this store (Hadoop keys). The credentials are not among them: S3A reads
        ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` from the JVM's environment."""
        return {
            "fs.s3a.endpoint": self.endpoint,
            "fs.s3a.endpoint.region": REGION,
            "fs.s3a.path.style.access": "true",
            "fs.s3a.connection.ssl.enabled": "false",
            "fs.s3a.aws.credentials.provider":
                "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider",
        }

    def spark_conf(self) -> dict[str, str]:
        """Spark settings (``spark.hadoop.fs.s3a.*`` and Delta's log store for ``s3a://``) for a new
        session or ``spark-submit --conf``. Delta's single-driver S3 log store is Delta's default for
        s3a and is named here so that it shows: only one Spark driver may write a table at a time."""
        conf = {f"spark.hadoop.{key}": value for key, value in self.hadoop_conf().items()}
        conf["spark.delta.logStore.s3a.impl"] = "io.delta.storage.S3SingleDriverLogStore"
        return conf

    # ------------------------------------------------------------------ S3 requests (SigV4)
    def request(self, method: str, path: str, body: bytes = b"", query: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """A signed S3 request to ``path`` (``/bucket[/key]``), with unsigned extra ``headers``;
        returns (HTTP status, body)."""
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        host = f"127.0.0.1:{self.port}"
        canonical_path = urllib.parse.quote(path, safe="/-_.~")
        canonical_query = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                                   for k, v in sorted((query or {}).items()))
        payload_hash = hashlib.sha256(body).hexdigest()
        signed_headers = "host;x-amz-content-sha256;x-amz-date"
        canonical_request = "\n".join([
            method, canonical_path, canonical_query,
            f"host:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{amz_date}\n",
            signed_headers, payload_hash])
        scope = f"{day}/{REGION}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(canonical_request.encode()).hexdigest()])
        key = _hmac(_hmac(_hmac(_hmac(f"AWS4{SECRET_KEY}".encode(), day), REGION), "s3"), "aws4_request")
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        url = self.endpoint + canonical_path + (f"?{canonical_query}" if canonical_query else "")
        request = urllib.request.Request(url, data=body if method in ("PUT", "POST") else None, method=method,
                                         headers={
            **(headers or {}), "x-amz-date": amz_date, "x-amz-content-sha256": payload_hash,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, "
                             f"SignedHeaders={signed_headers}, Signature={signature}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def keys(self, prefix: str = "") -> list[str]:
        """The keys in the bucket under ``prefix`` (one ListObjectsV2 page, up to 1000)."""
        status, body = self.request("GET", f"/{self.bucket}", query={"list-type": "2", "prefix": prefix})
        if status != 200:
            raise RuntimeError(f"listing s3://{self.bucket}/{prefix} failed with HTTP {status}: {body[:500]!r}")
        return re.findall(r"<Key>([^<]*)</Key>", body.decode())

    # ------------------------------------------------------------------ life cycle
    def _command(self) -> list[str]:
        d = self.work_dir
        ports = {name: free_port() for name in
                 ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
                  "filer.port", "filer.port.grpc", "s3.port.grpc")}
        flags = {
            "dir": str(d / "data"), "ip": "127.0.0.1", "ip.bind": "127.0.0.1",
            **{name: str(port) for name, port in ports.items()},
            "s3": "true", "s3.port": str(self.port), "s3.config": str(d / "s3.json"),
            "s3.port.iceberg": "0", "s3.port.lance": "0",  # no other listeners
            "s3.localSocket": str(d / "s3.sock"), "filer.localSocket": str(d / "filer.sock"),
            "master.volumeSizeLimitMB": str(VOLUME_SIZE_LIMIT_MB), "volume.max": str(MAX_VOLUMES),
            "master.telemetry": "false", "volume.preStopSeconds": "0",
        }
        return [str(weed_binary()), "-logtostderr", "-v=0", "server", *(f"-{k}={v}" for k, v in flags.items())]

    def start(self, timeout_s: float = 90) -> "ObjectStore":
        d = self.work_dir
        (d / "data").mkdir(parents=True, exist_ok=True)
        (d / "master.toml").write_text(MASTER_TOML)  # weed reads its *.toml from the working directory
        (d / "s3.json").write_text(json.dumps({"identities": [{
            "name": "iomt-ad-tests", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}))
        env = dict(os.environ, GOMEMLIMIT="384MiB", GOMAXPROCS="2")
        log_path = d / "weed.log"
        log_file = log_path.open("wb")
        self.process = subprocess.Popen(self._command(), stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                        cwd=d, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        # Ready when the bucket exists and an object can be written: the S3 port answers before the
        # filer and the volume server have registered with the master.
        step, last = "bucket", ""
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited early: {log_tail(log_path)}")
            try:
                if step == "bucket":
                    status, body = self.request("PUT", f"/{self.bucket}")
                    if status == 200 or b"BucketAlreadyOwnedByYou" in body:
                        step = "object"
                if step == "object":
                    status, body = self.request("PUT", f"/{self.bucket}/.ready", b"ready")
                    if status == 200:
                        self.request("DELETE", f"/{self.bucket}/.ready")
                        break
                last = f"{step}: HTTP {status} {body[:200]!r}"
            except OSError as exc:
                last = f"{step}: {exc}"
            if time.monotonic() > deadline:
                tail = log_tail(log_path)
                self.stop()
                raise TimeoutError(f"weed's S3 not ready after {timeout_s:.0f} s ({last}): {tail}")
            time.sleep(0.25)
        log.info("S3 object store up at %s, bucket %s (work dir %s)", self.endpoint, self.bucket, d)
        return self

    def stop(self) -> None:
        # The volume server stops at once; the filer then retries flushing its metadata change log
        # (not the objects) for 15 s before giving up: a short grace, then a kill.
        stop_service(self.process, 5, self.work_dir if self._owns_work_dir else None)
        self.process = None

    def __enter__(self) -> "ObjectStore":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # start one by hand: python -m tests.services.object_store
    logging.basicConfig(level=logging.INFO)
    with ObjectStore() as store:
        print(json.dumps({"endpoint": store.endpoint, "bucket": store.bucket,
                          "storage_options": store.storage_options()}, indent=2), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
