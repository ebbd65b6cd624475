"""Who may open the operator dashboard: user names with scrypt password hashes, from a users file
(``iomt-ad dashboard --add-user NAME --users-file FILE``) or one password from the environment
(``IOMT_AD_DASHBOARD_PASSWORD``, user ``IOMT_AD_DASHBOARD_USER``, default ``operator``). The command
hands the page only hashes (``IOMT_AD_DASHBOARD_CREDENTIALS``), never a password. Nothing here
imports Streamlit: the sign-in form is in ``app.py``.

A users file has one ``name:hash`` line per user (``#`` starts a comment); a hash is
``scrypt$N$r$p$salt$key`` (base64), made by :func:`hash_password`.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from jobs.errors import UserError

log = logging.getLogger(__name__)

ENV_USERS_FILE = "IOMT_AD_DASHBOARD_USERS_FILE"
ENV_PASSWORD = "IOMT_AD_DASHBOARD_PASSWORD"
ENV_USER = "IOMT_AD_DASHBOARD_USER"
ENV_CREDENTIALS = "IOMT_AD_DASHBOARD_CREDENTIALS"  # name:hash lines, from the command to the page
DEFAULT_USER = "operator"
MIN_PASSWORD = 12
USER_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1   # ~0.1 s a check: slow to guess, quick to sign in
_MAXMEM = 64 * 1024 * 1024


class AuthConfigError(UserError):
    """A users file or password that cannot be used; the message says what to change."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, maxmem=_MAXMEM)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def _parse_hash(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("not a scrypt$N$r$p$salt$key hash")
    n, r, p = (int(x) for x in parts[1:4])
    return n, r, p, base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)


def verify_password(password: str, encoded: str) -> bool:
    n, r, p, salt, key = _parse_hash(encoded)
    candidate = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=len(key))
    return hmac.compare_digest(candidate, key)


def parse_users(text: str, where: str) -> dict[str, str]:
    """``name:hash`` lines -> {name: hash}; a malformed line is an error naming it."""
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, encoded = line.partition(":")
        try:
            if not USER_NAME.fullmatch(name):
                raise ValueError(f"user name {name!r} must be 1-64 of A-Z a-z 0-9 . _ @ -")
            _parse_hash(encoded)
        except ValueError as exc:
            raise AuthConfigError(f"{where} line {number}: {exc}; make lines with "
                                  "`iomt-ad dashboard --add-user NAME --users-file FILE`") from exc
        users[name] = encoded
    return users


def read_users(path: Path) -> dict[str, str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise AuthConfigError(f"dashboard users file {path}: {exc.strerror}") from exc
    users = parse_users(text, str(path))
    if not users:
        raise AuthConfigError(f"dashboard users file {path} has no user: add one with "
                              f"`iomt-ad dashboard --add-user NAME --users-file {path}`")
    return users


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AuthConfigError(f"a dashboard password needs at least {MIN_PASSWORD} characters")


def add_user(path: Path, name: str, password: str) -> None:
    """Add ``name`` to the users file (or replace its hash); the file is written 0600, atomically."""
    if not USER_NAME.fullmatch(name):
        raise AuthConfigError(f"user name {name!r} must be 1-64 of A-Z a-z 0-9 . _ @ -")
    check_new_password(password)
    path = Path(path)
    users = parse_users(path.read_text(encoding="utf-8"), str(path)) if path.is_file() else {}
    users[name] = hash_password(password)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write("# iomt-ad dashboard users: name:scrypt hash (iomt-ad dashboard --add-user)\n")
            out.writelines(f"{user}:{encoded}\n" for user, encoded in users.items())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def credentials_from(users_file: Path | None, env: Mapping[str, str]) -> dict[str, str] | None:
    """The users who may sign in (name -> hash), from the users file or the environment's password;
    None when neither is configured."""
    if users_file is not None:
        return read_users(users_file)
    password = env.get(ENV_PASSWORD)
    if password:
        check_new_password(password)
        name = env.get(ENV_USER) or DEFAULT_USER
        if not USER_NAME.fullmatch(name):
            raise AuthConfigError(f"{ENV_USER}={name!r} must be 1-64 of A-Z a-z 0-9 . _ @ -")
        return {name: hash_password(password)}
    return None


def encode_credentials(users: Mapping[str, str]) -> str:
    return "\n".join(f"{name}:{encoded}" for name, encoded in users.items())


def credentials_from_env(env: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """What the page checks: the hashes the command handed it (None: no sign-in)."""
    text = (os.environ if env is None else env).get(ENV_CREDENTIALS)
    return parse_users(text, ENV_CREDENTIALS) if text else None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SignInThrottle:
    """Failed sign-ins of a user name, shared by every browser session of the server: each failure
    within 15 minutes doubles the wait before the next answer (0.5 s, 1 s, 2 s ... at most 30 s)."""

    WINDOW_S, FIRST_S, MAX_S = 900.0, 0.5, 30.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int, float]] = {}

    def delay(self, name: str) -> float:
        with self._lock:
            count, last = self._failures.get(name, (0, 0.0))
            if count == 0 or time.monotonic() - last > self.WINDOW_S:
                return 0.0
            return min(self.MAX_S, self.FIRST_S * 2 ** (count - 1))

    def failed(self, name: str) -> None:
        with self._lock:
            count, last = self._failures.get(name, (0, 0.0))
            if time.monotonic() - last > self.WINDOW_S:
                count = 0
            self._failures[name] = (count + 1, time.monotonic())

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)


THROTTLE = SignInThrottle()
_UNKNOWN_USER: list[str] = []  # a hash checked for unknown names: the same time taken as for a user


def _unknown_user_hash() -> str:
    if not _UNKNOWN_USER:
        _UNKNOWN_USER.append(hash_password(secrets.token_hex(16)))
    return _UNKNOWN_USER[0]


def sign_in(users: Mapping[str, str], name: str, password: str, throttle: SignInThrottle = THROTTLE) -> bool:
    """Whether ``name`` / ``password`` may sign in; waits first while the name's failures say so."""
    key = name[:64]
    time.sleep(throttle.delay(key))
    ok = verify_password(password, users.get(name) or _unknown_user_hash()) and name in users
    if ok:
        throttle.succeeded(key)
        log.info("dashboard: %r signed in", key)
    else:
        throttle.failed(key)
        log.warning("dashboard: failed sign-in as %r", key)
    return ok
