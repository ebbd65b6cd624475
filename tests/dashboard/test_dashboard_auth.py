"""The operator dashboard's sign-in: password hashes and the users file, the command's refusal to serve
the network without sign-in, and the page itself (Streamlit's AppTest): nothing of the data before
signing in, an error for a wrong password, the dashboard after the right one. The real server over
https in Chromium: tests/dashboard/test_operator_dashboard.py."""
from __future__ import annotations

import logging
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.cli import main
from jobs.dashboard import APP, auth, data
from tests.helpers.streaming import BUNDLE

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


def test_hashes_verify_only_their_password() -> None:
    encoded = auth.hash_password(PASSWORD)
    assert encoded.startswith("scrypt$32768$8$1$") and PASSWORD not in encoded
    assert auth.verify_password(PASSWORD, encoded)
    assert not auth.verify_password(PASSWORD + "!", encoded)
    assert auth.hash_password(PASSWORD) != encoded  # salted


def test_add_user_writes_a_private_users_file(tmp_path) -> None:
    users_file = tmp_path / "users"
    auth.add_user(users_file, "alice", PASSWORD)
    auth.add_user(users_file, "bob", "another long password")
    auth.add_user(users_file, "alice", "a changed password!")  # replaces her hash
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    users = auth.read_users(users_file)
    assert sorted(users) == ["alice", "bob"]
    assert auth.verify_password("a changed password!", users["alice"])
    assert PASSWORD not in users_file.read_text()
    with pytest.raises(auth.AuthConfigError, match="at least 12 characters"):
        auth.add_user(users_file, "carol", "short")
    with pytest.raises(auth.AuthConfigError, match="user name"):
        auth.add_user(users_file, "eve:root", PASSWORD)


def test_a_malformed_users_file_names_the_line(tmp_path) -> None:
    users_file = tmp_path / "users"
    users_file.write_text("# users\nalice:plaintext-password\n")
    with pytest.raises(auth.AuthConfigError, match="line 2: not a scrypt"):
        auth.read_users(users_file)
    users_file.write_text("# nobody yet\n")
    with pytest.raises(auth.AuthConfigError, match="has no user"):
        auth.read_users(users_file)


def test_add_user_from_the_command_line(tmp_path) -> None:
    users_file = tmp_path / "users"
    result = subprocess.run([sys.executable, "-m", "jobs.dashboard", "--add-user", "alice", "--users-file",
                             str(users_file)], input=PASSWORD + "\n", text=True, capture_output=True, cwd=REPO,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert auth.verify_password(PASSWORD, auth.read_users(users_file)["alice"])


def _args(*extra: str):
    import argparse

    from jobs.dashboard import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--model", str(BUNDLE), *extra])


def test_the_network_without_sign_in_is_refused(tmp_path, monkeypatch, caplog) -> None:
    from jobs.dashboard import server_environment

    monkeypatch.delenv(auth.ENV_PASSWORD, raising=False)
    monkeypatch.delenv(auth.ENV_USERS_FILE, raising=False)
    # refused before the server starts (the command would otherwise become the server)
    assert main(["dashboard", "--host", "0.0.0.0", "--tables", str(tmp_path), "--model", str(BUNDLE)]) == 2
    assert "without sign-in" in caplog.text and "--add-user" in caplog.text
    assert not auth.is_loopback("192.168.1.5") and not auth.is_loopback("::")
    assert auth.is_loopback("127.0.0.1") and auth.is_loopback("::1") and auth.is_loopback("localhost")
    settings = data.DashboardSettings(tables_dir=tmp_path, model_dir=BUNDLE)
    with caplog.at_level(logging.WARNING):
        env = server_environment(_args(), settings, {})
    assert auth.ENV_CREDENTIALS not in env and "has no sign-in" in caplog.text  # loopback: allowed, said


def test_a_password_from_the_environment_reaches_the_page_only_hashed(tmp_path) -> None:
    from jobs.dashboard import server_environment

    settings = data.DashboardSettings(tables_dir=tmp_path, model_dir=BUNDLE)
    env = server_environment(_args("--host", "0.0.0.0"), settings,
                             {auth.ENV_PASSWORD: PASSWORD, auth.ENV_USER: "nurse", "PATH": "/usr/bin"})
    assert auth.ENV_PASSWORD not in env and PASSWORD not in "".join(env.values())
    users = auth.credentials_from_env(env)
    assert list(users) == ["nurse"] and auth.verify_password(PASSWORD, users["nurse"])
    with pytest.raises(auth.AuthConfigError, match="at least 12"):
        server_environment(_args("--host", "0.0.0.0"), settings, {auth.ENV_PASSWORD: "short"})


def test_tls_needs_both_files(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(auth.ENV_PASSWORD, raising=False)
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    assert main(["dashboard", "--tables", str(tmp_path), "--tls-cert", str(cert)]) == 2
    assert main(["dashboard", "--tables", str(tmp_path), "--tls-cert", str(cert),
                 "--tls-key", str(tmp_path / "missing.pem")]) == 2


def test_failed_sign_ins_slow_the_next_ones_down() -> None:
    throttle = auth.SignInThrottle()
    users = {"alice": auth.hash_password(PASSWORD)}
    assert not auth.sign_in(users, "alice", "guess-1", throttle)
    assert not auth.sign_in(users, "mallory", PASSWORD, throttle)  # unknown user: refused all the same
    assert throttle.delay("alice") == 0.5
    assert not auth.sign_in(users, "alice", "guess-2", throttle)
    assert throttle.delay("alice") == 1.0
    started = time.monotonic()
    assert auth.sign_in(users, "alice", PASSWORD, throttle)
    assert time.monotonic() - started >= 1.0
    assert throttle.delay("alice") == 0.0  # reset by the success


def _page(monkeypatch, tables: Path, users: dict[str, str] | None):
    from streamlit.testing.v1 import AppTest

    settings = data.DashboardSettings(tables_dir=tables, model_dir=BUNDLE, refresh_seconds=3600)
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    if users is None:
        monkeypatch.delenv(auth.ENV_CREDENTIALS, raising=False)
    else:
        monkeypatch.setenv(auth.ENV_CREDENTIALS, auth.encode_credentials(users))
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.run()
    assert not app.exception, app.exception
    return app


def test_the_page_shows_nothing_before_sign_in(monkeypatch, tmp_path) -> None:
    auth.THROTTLE.succeeded("apptest")
    app = _page(monkeypatch, tmp_path / "no-tables-yet", {"apptest": auth.hash_password(PASSWORD)})
    assert [t.label for t in app.text_input] == ["User", "Password"]
    assert not app.info and not app.metric and not app.caption  # no data, not even the tables' path

    app.text_input[0].input("apptest")
    app.text_input[1].input("not the password")
    app.button[0].click().run()
    assert app.error[0].value == "Wrong user name or password."
    assert not app.info and not app.metric

    app.text_input[1].input(PASSWORD)
    app.button[0].click().run()
    assert not app.exception, app.exception
    assert "No scored records" in app.info[0].value  # the dashboard itself
    assert any("signed in as apptest" in c.value for c in app.sidebar.caption)
    app.sidebar.button[0].click().run()  # sign out
    assert [t.label for t in app.text_input] == ["User", "Password"] and not app.info


def test_without_users_the_page_opens_as_before(monkeypatch, tmp_path) -> None:
    app = _page(monkeypatch, tmp_path / "no-tables-yet", None)
    assert not app.text_input and "No scored records" in app.info[0].value
