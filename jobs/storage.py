"""Where the Delta tables live: a local directory or an S3-compatible object store.

``stream.tables_dir`` is a path (``var/delta``) or a URI (``s3://bucket/prefix``; ``s3a://`` is
taken as the same place). ``stream.storage`` says how to reach the store: its endpoint, region and
whether plain HTTP is allowed; the credentials come only from the environment or from files
(``access_key_env`` / ``access_key_file``, ``secret_key_env`` / ``secret_key_file``), read when a
client is built, never from a configuration value.

Every reader and writer asks :class:`TablesLocation` for its form of a table's address: delta-rs
takes ``s3://`` with storage options, Spark (delta-spark over Hadoop's S3A) takes ``s3a://`` with
``spark.hadoop.fs.s3a.*`` settings, the executors' Parquet writer takes a pyarrow filesystem.

Atomic commits: delta-rs writes each commit with a conditional PUT (``If-None-Match: *``), which AWS
S3 and SeaweedFS honour, so a commit never overwrites another writer's; for a store that does not,
``storage.single_writer`` (delta-rs's ``AWS_S3_ALLOW_UNSAFE_RENAME``) says the stream is the tables'
one writer. Spark's S3 log store (``iomt-ad maintain``, ``rescore``) checks then writes: run
``maintain`` while the stream is stopped (docs/cluster.md).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from jobs.errors import UserError

if TYPE_CHECKING:
    from pyarrow import fs

log = logging.getLogger(__name__)

OBJECT_STORE_SCHEMES = ("s3", "s3a")


class StorageError(UserError, ValueError):
    """Tables that cannot be reached as configured; the message says what to set."""


@dataclass(frozen=True)
class StorageConfig:
    """How to reach the object store that holds the tables (``stream.storage``); unused for local paths."""

    endpoint: str | None = None     # an S3-compatible endpoint (http(s)://host:port); None: AWS S3
    region: str = "us-east-1"
    allow_http: bool = False        # a plain-HTTP endpoint (a store on a trusted network only)
    single_writer: bool = False     # delta-rs's AWS_S3_ALLOW_UNSAFE_RENAME: the stream is the tables' one writer
    access_key_env: str | None = "AWS_ACCESS_KEY_ID"
    access_key_file: str | None = None
    secret_key_env: str | None = "AWS_SECRET_ACCESS_KEY"
    secret_key_file: str | None = None
    session_token_env: str | None = "AWS_SESSION_TOKEN"
    options: Mapping[str, str] = field(default_factory=dict)  # more delta-rs storage options (no secrets)


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # never in a log line or a traceback
        return "Credentials(<redacted>)"


def read_credentials(storage: StorageConfig) -> Credentials:
    from jobs.config import read_secret

    access = read_secret(storage.access_key_env, storage.access_key_file, "object store access key")
    secret = read_secret(storage.secret_key_env, storage.secret_key_file, "object store secret key")
    if not access or not secret:
        raise StorageError(
            "the tables are on an object store but its credentials were not found: set the environment "
            f"variables {storage.access_key_env or '(storage.access_key_env)'} and "
            f"{storage.secret_key_env or '(storage.secret_key_env)'}, or stream.storage.access_key_file and "
            "secret_key_file")
    token = read_secret(storage.session_token_env, None, "object store session token")
    return Credentials(access, secret, token)


@dataclass(frozen=True)
class TablesLocation:
    """The root under which the job's tables live, and how to reach it.

    ``credentials``: read once (on the driver) and carried to the executors with the task context;
    None for local tables, or before :meth:`resolved` was called."""

    root: str
    storage: StorageConfig = field(default_factory=StorageConfig)
    credentials: Credentials | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, tables_dir: str | Path, storage: StorageConfig | None = None) -> "TablesLocation":
        text = str(tables_dir)
        scheme = urlparse(text).scheme if "://" in text else ""
        if not scheme or scheme == "file":
            local = Path(text[len("file://"):] if scheme == "file" else text).expanduser().resolve()
            return cls(str(local), storage or StorageConfig())
        if scheme not in OBJECT_STORE_SCHEMES:
            raise StorageError(f"stream.tables_dir {text!r}: IoMT-AD reads and writes tables on a local or "
                               "mounted path, or on an S3-compatible store (s3://bucket/prefix); "
                               f"{scheme}:// is not supported yet")
        parsed = urlparse(text)
        if not parsed.netloc:
            raise StorageError(f"stream.tables_dir {text!r}: name the bucket (s3://bucket/prefix)")
        prefix = parsed.path.strip("/")
        return cls(f"s3://{parsed.netloc}{'/' + prefix if prefix else ''}", storage or StorageConfig())

    @property
    def is_local(self) -> bool:
        return not self.root.startswith("s3://")

    def resolved(self) -> "TablesLocation":
        """This location with its credentials read (from the environment or files); local: itself."""
        if self.is_local or self.credentials is not None:
            return self
        return TablesLocation(self.root, self.storage, read_credentials(self.storage))

    def uri(self, name: str = "") -> str:
        """A table's address as delta-rs and pyarrow take it."""
        return f"{self.root}/{name}" if name else self.root

    def spark_uri(self, name: str = "") -> str:
        """A table's address as Spark takes it (Hadoop's S3A filesystem for object stores)."""
        uri = self.uri(name)
        return "s3a://" + uri[len("s3://"):] if uri.startswith("s3://") else uri

    def storage_options(self) -> dict[str, str] | None:
        """delta-rs's storage options (None for local tables)."""
        if self.is_local:
            return None
        credentials = self.resolved().credentials
        options = {"AWS_REGION": self.storage.region, "AWS_ACCESS_KEY_ID": credentials.access_key,
                   "AWS_SECRET_ACCESS_KEY": credentials.secret_key}
        if credentials.session_token:
            options["AWS_SESSION_TOKEN"] = credentials.session_token
        if self.storage.endpoint:
            options["AWS_ENDPOINT_URL"] = self.storage.endpoint
        if self.storage.allow_http:
            options["AWS_ALLOW_HTTP"] = "true"
        if self.storage.single_writer:
            options["AWS_S3_ALLOW_UNSAFE_RENAME"] = "true"
        options.update(self.storage.options)
        return options

    def filesystem(self) -> tuple["fs.FileSystem", str]:
        """A pyarrow filesystem and the root's path in it (for writing data files)."""
        from pyarrow import fs

        if self.is_local:
            return fs.LocalFileSystem(), self.root
        credentials = self.resolved().credentials
        endpoint = urlparse(self.storage.endpoint) if self.storage.endpoint else None
        if endpoint is not None and endpoint.scheme == "http" and not self.storage.allow_http:
            raise StorageError(f"stream.storage.endpoint {self.storage.endpoint} is plain HTTP: set "
                               "stream.storage.allow_http: true (a store on a trusted network only) or use https")
        store = fs.S3FileSystem(
            access_key=credentials.access_key, secret_key=credentials.secret_key,
            session_token=credentials.session_token, region=self.storage.region,
            endpoint_override=endpoint.netloc if endpoint else None,
            scheme=endpoint.scheme if endpoint else "https")
        return store, self.root[len("s3://"):]

    def is_table(self, name: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.uri(name), storage_options=self.storage_options())

    def delta_table(self, name: str):
        """The table as delta-rs opens it (raises when it does not exist)."""
        from deltalake import DeltaTable

        return DeltaTable(self.uri(name), storage_options=self.storage_options())

    def table_names(self) -> list[str]:
        """The Delta tables directly under the root (a ``_delta_log`` inside), sorted."""
        from pyarrow import fs

        store, root = self.filesystem()
        try:
            entries = store.get_file_info(fs.FileSelector(root, allow_not_found=True))
        except OSError as exc:
            raise StorageError(f"cannot list {self.root}: {exc}") from exc
        names = [entry.base_name for entry in entries if entry.type == fs.FileType.Directory
                 and not entry.base_name.startswith(("_", "."))]
        return sorted(name for name in names
                      if store.get_file_info(f"{root}/{name}/_delta_log").type == fs.FileType.Directory)

    def spark_conf(self, with_credentials: bool = False) -> dict[str, str]:
        """Hadoop S3A settings for Spark; empty for local tables. ``with_credentials``: the keys
        too, read as every other reader reads them (Spark redacts ``*secret*``, ``*access.key*`` and
        ``*token*`` settings from its UI and logs)."""
        if self.is_local:
            return {}
        conf = {"spark.hadoop.fs.s3a.path.style.access": "true",
                "spark.hadoop.fs.s3a.endpoint.region": self.storage.region}
        if with_credentials:
            credentials = self.resolved().credentials
            conf["spark.hadoop.fs.s3a.access.key"] = credentials.access_key
            conf["spark.hadoop.fs.s3a.secret.key"] = credentials.secret_key
            if credentials.session_token:
                conf["spark.hadoop.fs.s3a.session.token"] = credentials.session_token
                conf["spark.hadoop.fs.s3a.aws.credentials.provider"] = (
                    "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider")
        if self.storage.endpoint:
            endpoint = urlparse(self.storage.endpoint)
            conf["spark.hadoop.fs.s3a.endpoint"] = self.storage.endpoint
            conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = "true" if endpoint.scheme == "https" else "false"
        return conf
