"""``consentgate check-config --connect``: the stores a configuration names, reached for
real before the app starts — SQLite in tmp_path, PostgreSQL and Redis from
tests/services.py (skipped when absent, failed under CONSENTGATE_REQUIRE_SERVICES=1),
and their outages played by the fault proxy (tests/services.py, ``TcpProxy``).

The CLI runs ``asyncio.run`` in the test's thread, so the proxy runs on an event loop
of its own in a second thread. Times are measured only as bounds (the check must end
within its timeout and a margin), never as speeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from tests.conftest import SECRET, run
from tests.services import (
    Fault,
    TcpProxy,
    fresh_postgres_schema,
    require_postgres,
    require_redis,
    run_redis_url,
    with_address,
)
from tests.test_cli_packaging import child_env, consentgate_command

from consentgate.cli import main
from consentgate.storage import SQLiteStorage, storage_from_url
from consentgate.storage.sqlite import SCHEMA_VERSION

T = TypeVar("T")
TIMEOUT = 1.5  # the --timeout of the fault tests: short, and well above a working connect
MARGIN = 5.0  # what a busy machine may add to it (start-up, closing), as a bound only
PASSWORD = "hunter2-never-shown"


@pytest.fixture(autouse=True)
def _no_env_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSENTGATE_SECRET_KEYS", raising=False)


def write_config(tmp_path: Path, *, database_url: str, meter_url: str | None = None) -> Path:
    lines = [f"secret_keys = {json.dumps([SECRET])}", f"database_url = {json.dumps(database_url)}"]
    if meter_url is not None:
        lines.append(f"meter_url = {json.dumps(meter_url)}")
    path = tmp_path / "consentgate.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def migrated_sqlite(tmp_path: Path, target: int = SCHEMA_VERSION) -> str:
    url = sqlite_url(tmp_path)

    async def migrate() -> None:
        storage = SQLiteStorage(tmp_path / "ledger.db")
        try:
            await storage.migrate(target)
        finally:
            await storage.close()

    run(migrate())
    return url


Capsys = pytest.CaptureFixture[str]


@dataclass(frozen=True)
class Outcome:
    status: int
    out: str
    err: str
    elapsed: float  # seconds, for bounds only


def check(capsys: Capsys, path: Path, *options: str) -> Outcome:
    """``consentgate check-config PATH --connect …`` through the CLI's entry point."""
    started = time.monotonic()
    status = main(["check-config", str(path), "--connect", *options])
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    return Outcome(status, out, err, elapsed)


def connect_lines(out: str) -> list[str]:
    """The lines --connect adds after the summary."""
    return [line for line in out.splitlines() if line.startswith(("  database_url", "  meter_url"))]


class ProxyThread:
    """A :class:`TcpProxy` on its own event loop in a thread."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        self.proxy = TcpProxy(parts.hostname, parts.port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.call(self.proxy.start())

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def url(self, url: str) -> str:
        """``url`` pointed at the proxy."""
        return with_address(url, "127.0.0.1", self.proxy.port)

    def close(self) -> None:
        self.call(self.proxy.heal())  # resets the held connections: their handlers end
        self.call(self.proxy.stop())
        self.call(self._cancel_the_rest())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    @staticmethod
    async def _cancel_the_rest() -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.contextmanager
def faulty(url: str, fault: Fault) -> Iterator[str]:
    """``url`` through a proxy playing ``fault``."""
    proxy = ProxyThread(url)
    try:
        proxy.call(proxy.proxy.fault(fault))
        yield proxy.url(url)
    finally:
        proxy.close()


def with_password(url: str) -> tuple[str, str]:
    """``url`` with a password, and the password, which must never be shown: the test
    server's own if its URL has one, else PASSWORD (trust authentication ignores it)."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    netloc = f"{parts.username or 'postgres'}:{PASSWORD}@{parts.hostname}:{parts.port}"
    return parts._replace(netloc=netloc).geturl(), PASSWORD


def postgres_schema_version(url: str) -> int:
    async def read() -> int:
        storage = storage_from_url(url)
        try:
            return await storage.schema_version()
        finally:
            await storage.close()

    return run(read())


# -- SQLite, and what every store shares ------------------------------------------------


def test_check_config_connect_sqlite_reports_schema_version(tmp_path: Path, capsys: Capsys) -> None:
    path = write_config(tmp_path, database_url=migrated_sqlite(tmp_path))
    result = check(capsys, path)
    assert (result.status, result.err) == (0, "")
    assert result.out.splitlines()[0] == f"{path}: OK"
    assert connect_lines(result.out) == [
        f"  database_url  reachable (SQLite, schema version {SCHEMA_VERSION})"
    ]


def test_check_config_connect_sqlite_missing_file_is_not_created(
    tmp_path: Path, capsys: Capsys
) -> None:
    path = write_config(tmp_path, database_url=f"sqlite:///{tmp_path / 'new' / 'ledger.db'}")
    result = check(capsys, path)
    assert (result.status, result.err) == (0, "")
    assert connect_lines(result.out) == [
        "  database_url  reachable (SQLite, no database yet: the app creates it at first start)"
    ]
    assert not (tmp_path / "new").exists()  # a check, not a start: nothing left behind


def test_check_config_connect_sqlite_old_schema_says_migrate(
    tmp_path: Path, capsys: Capsys
) -> None:
    path = write_config(tmp_path, database_url=migrated_sqlite(tmp_path, target=2))
    result = check(capsys, path)
    assert result.status == 1
    assert connect_lines(result.out) == []
    assert result.err == (
        f"{path}: database_url: reachable (SQLite), but database schema is version 2, this "
        f"consentgate needs {SCHEMA_VERSION}: run `consentgate migrate`\n"
    )


def test_check_config_connect_sqlite_not_a_database_fails(tmp_path: Path, capsys: Capsys) -> None:
    (tmp_path / "ledger.db").write_bytes(b"this is not an SQLite file. " * 100)
    path = write_config(tmp_path, database_url=sqlite_url(tmp_path))
    result = check(capsys, path)
    assert result.status == 1
    assert result.err.startswith(f"{path}: database_url: ")
    assert "not a database" in result.err
    assert len(result.err.splitlines()) == 1


def test_check_config_without_connect_stays_offline(tmp_path: Path, capsys: Capsys) -> None:
    # Nothing listens at either URL (and no server is needed for this test): without
    # --connect the command must not notice.
    with faulty("postgresql://postgres@127.0.0.1:5432/test", Fault.REFUSE) as database_url:
        port = urlsplit(database_url).port
        meter_url = f"redis://127.0.0.1:{port}/0"
        path = write_config(tmp_path, database_url=database_url, meter_url=meter_url)
        assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[0] == f"{path}: OK"
    assert connect_lines(out) == []


def test_check_config_connect_still_requires_a_secret_key(tmp_path: Path, capsys: Capsys) -> None:
    path = tmp_path / "consentgate.toml"
    path.write_text(f"database_url = {json.dumps(sqlite_url(tmp_path))}\n", encoding="utf-8")
    result = check(capsys, path)
    assert (result.status, result.out) == (1, "")
    assert result.err.startswith(f"{path}: secret_keys: no secret key set")
    assert not (tmp_path / "ledger.db").exists()  # refused before connecting to anything


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "--timeout: must be a positive number of seconds, got 0"),
        ("nan", "--timeout: must be a positive number of seconds, got nan"),
        ("soon", "--timeout: not a number of seconds: 'soon'"),
    ],
)
def test_check_config_connect_timeout_refuses_a_bad_value(
    tmp_path: Path, capsys: Capsys, value: str, message: str
) -> None:
    path = write_config(tmp_path, database_url=sqlite_url(tmp_path))
    result = check(capsys, path, "--timeout", value)
    assert (result.status, result.out) == (2, "")
    assert message in result.err


def test_check_config_timeout_without_connect_is_a_usage_error(
    tmp_path: Path, capsys: Capsys
) -> None:
    path = write_config(tmp_path, database_url=sqlite_url(tmp_path))
    assert main(["check-config", str(path), "--timeout", "3"]) == 2
    assert capsys.readouterr() == (
        "",
        "consentgate: check-config: --timeout bounds the --connect checks; give --connect\n",
    )


# -- PostgreSQL ---------------------------------------------------------------------------


def test_check_config_connect_postgres_reports_server_and_schema(
    tmp_path: Path, capsys: Capsys
) -> None:
    with fresh_postgres_schema(require_postgres()) as url:
        path = write_config(tmp_path, database_url=url)
        assert main(["migrate", "--config", str(path)]) == 0
        capsys.readouterr()
        result = check(capsys, path)
    assert (result.status, result.err) == (0, "")
    [line] = connect_lines(result.out)
    assert re.fullmatch(
        rf"  database_url  reachable \(PostgreSQL \d+(\.\d+)*, schema version {SCHEMA_VERSION}\)",
        line,
    ), line


def test_check_config_connect_postgres_empty_schema_is_left_empty(
    tmp_path: Path, capsys: Capsys
) -> None:
    with fresh_postgres_schema(require_postgres()) as url:
        path = write_config(tmp_path, database_url=url)
        result = check(capsys, path)
        assert postgres_schema_version(url) == 0  # read-only: the app creates it, not this
    assert (result.status, result.err) == (0, "")
    [line] = connect_lines(result.out)
    assert re.fullmatch(
        r"  database_url  reachable \(PostgreSQL [\d.]+, empty: the app creates schema "
        rf"version {SCHEMA_VERSION} at start\)",
        line,
    ), line


def test_check_config_connect_postgres_wrong_database_says_what_the_driver_says(
    tmp_path: Path, capsys: Capsys
) -> None:
    url, password = with_password(require_postgres())
    parts = urlsplit(url)
    path = write_config(tmp_path, database_url=parts._replace(path="/cg_no_such_db").geturl())
    result = check(capsys, path)
    assert result.status == 1
    assert result.err.startswith(f"{path}: database_url: cannot connect: ")
    assert 'database "cg_no_such_db" does not exist' in result.err
    assert len(result.err.splitlines()) == 1
    assert password not in result.out + result.err
    assert ":***@" in result.out  # the summary masks it too


def test_check_config_connect_postgres_query_password_is_never_shown(
    tmp_path: Path, capsys: Capsys
) -> None:
    # libpq's password= parameter in the query: the summary and the driver's message
    # (here a database that does not exist) must both go without it.
    parts = urlsplit(require_postgres())
    netloc = f"{parts.username or 'postgres'}@{parts.hostname}:{parts.port}"
    url = parts._replace(netloc=netloc, path="/cg_no_such_db", query=f"password={PASSWORD}")
    path = write_config(tmp_path, database_url=url.geturl())
    result = check(capsys, path)
    assert result.status == 1
    assert 'database "cg_no_such_db" does not exist' in result.err
    assert PASSWORD not in result.out + result.err
    assert "password=***" in result.out


def test_check_config_connect_postgres_refused_port_says_connection_refused(
    tmp_path: Path, capsys: Capsys
) -> None:
    target, password = with_password(require_postgres())
    with faulty(target, Fault.REFUSE) as url:
        path = write_config(tmp_path, database_url=url)
        result = check(capsys, path, "--timeout", str(TIMEOUT))
    port = urlsplit(url).port
    assert result.status == 1
    assert result.err == (
        f"{path}: database_url: unreachable: connection refused (127.0.0.1:{port})\n"
    )
    assert connect_lines(result.out) == []
    assert password not in result.out + result.err
    assert result.elapsed < TIMEOUT + MARGIN


def test_check_config_connect_postgres_reset_says_the_connection_broke(
    tmp_path: Path, capsys: Capsys
) -> None:
    with faulty(require_postgres(), Fault.RESET) as url:
        path = write_config(tmp_path, database_url=url)
        result = check(capsys, path, "--timeout", str(TIMEOUT))
    port = urlsplit(url).port
    assert result.status == 1
    # libpq meets the reset as a reset or, when it comes before its read, as a close.
    reason = "unreachable: connection (reset|closed by the server)"
    assert re.fullmatch(
        rf"{re.escape(str(path))}: database_url: {reason} \(127\.0\.0\.1:{port}\)\n", result.err
    ), result.err
    assert result.elapsed < TIMEOUT + MARGIN


def test_check_config_connect_postgres_black_hole_times_out(tmp_path: Path) -> None:
    # The installed command in a real process: it must also *exit* within the bound,
    # with no thread or pool left waiting on the silent server.
    target, password = with_password(require_postgres())
    with faulty(target, Fault.BLACKHOLE) as url:
        path = write_config(tmp_path, database_url=url)
        started = time.monotonic()
        done = subprocess.run(
            [*consentgate_command(), "check-config", str(path), "--connect", "--timeout", "2"],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=60,
            check=False,
        )
        elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert done.stderr == f"{path}: database_url: unreachable: timed out after 2.0 s\n"
    assert done.stdout.splitlines()[0] == f"{path}: OK"
    assert password not in done.stdout + done.stderr
    assert elapsed < 2 + MARGIN


def test_check_config_connect_postgres_stall_times_out(tmp_path: Path, capsys: Capsys) -> None:
    with faulty(require_postgres(), Fault.STALL) as url:
        path = write_config(tmp_path, database_url=url)
        result = check(capsys, path, "--timeout", str(TIMEOUT))
    assert result.status == 1
    assert result.err == f"{path}: database_url: unreachable: timed out after {TIMEOUT} s\n"
    assert result.elapsed < TIMEOUT + MARGIN


# -- Redis --------------------------------------------------------------------------------


def test_check_config_connect_redis_reports_version(tmp_path: Path, capsys: Capsys) -> None:
    meter_url = run_redis_url(require_redis())
    path = write_config(tmp_path, database_url=migrated_sqlite(tmp_path), meter_url=meter_url)
    result = check(capsys, path)
    assert (result.status, result.err) == (0, "")
    database, meter = connect_lines(result.out)
    assert database == f"  database_url  reachable (SQLite, schema version {SCHEMA_VERSION})"
    assert re.fullmatch(r"  meter_url     reachable \(Redis \d+(\.\d+)*\)", meter), meter


def test_check_config_connect_redis_refused_port_says_connection_refused(
    tmp_path: Path, capsys: Capsys
) -> None:
    with faulty(run_redis_url(require_redis()), Fault.REFUSE) as meter_url:
        path = write_config(tmp_path, database_url=migrated_sqlite(tmp_path), meter_url=meter_url)
        result = check(capsys, path, "--timeout", str(TIMEOUT))
    port = urlsplit(meter_url).port
    assert result.status == 1
    # The database still gets its line: every key is checked, whatever the others do.
    assert connect_lines(result.out) == [
        f"  database_url  reachable (SQLite, schema version {SCHEMA_VERSION})"
    ]
    assert result.err == f"{path}: meter_url: unreachable: connection refused (127.0.0.1:{port})\n"
    assert result.elapsed < TIMEOUT + MARGIN


@pytest.mark.parametrize(
    "message",
    [
        "Connection closed by server.",  # redis-py, reading the answer
        "Connection closed by the server before write",  # redis-py, before its command
        "server closed the connection unexpectedly",  # libpq
    ],
)
def test_check_config_connect_closed_connection_reads_the_same_whichever_driver_words_it(
    message: str,
) -> None:
    # Which words a reset gets depends on when it lands (a race the RESET proxy test
    # below meets now and then): the operator reads one line for all of them.
    from consentgate.cli.check_config import _failure

    said = _failure(ConnectionError(message), "redis://127.0.0.1:6390/0", 0.01)
    assert said == "unreachable: connection closed by the server (127.0.0.1:6390)"


def test_check_config_connect_redis_reset_says_the_connection_broke(
    tmp_path: Path, capsys: Capsys
) -> None:
    with faulty(run_redis_url(require_redis()), Fault.RESET) as meter_url:
        path = write_config(tmp_path, database_url=migrated_sqlite(tmp_path), meter_url=meter_url)
        result = check(capsys, path, "--timeout", str(TIMEOUT))
    port = urlsplit(meter_url).port
    assert result.status == 1
    reason = "unreachable: connection (reset|closed by the server)"
    assert re.fullmatch(
        rf"{re.escape(str(path))}: meter_url: {reason} \(127\.0\.0\.1:{port}\)\n", result.err
    ), result.err
    assert result.elapsed < TIMEOUT + MARGIN


def test_check_config_connect_redis_black_hole_times_out(tmp_path: Path, capsys: Capsys) -> None:
    with faulty(run_redis_url(require_redis()), Fault.BLACKHOLE) as meter_url:
        path = write_config(tmp_path, database_url=migrated_sqlite(tmp_path), meter_url=meter_url)
        result = check(capsys, path, "--timeout", str(TIMEOUT))
    assert result.status == 1
    assert result.err == f"{path}: meter_url: unreachable: timed out after {TIMEOUT} s\n"
    assert result.elapsed < TIMEOUT + MARGIN


def test_check_config_connect_redis_wrong_password_says_what_the_driver_says(
    tmp_path: Path, capsys: Capsys
) -> None:
    parts = urlsplit(run_redis_url(require_redis()))
    meter_url = parts._replace(netloc=f"nobody:{PASSWORD}@{parts.hostname}:{parts.port}").geturl()
    path = write_config(tmp_path, database_url=migrated_sqlite(tmp_path), meter_url=meter_url)
    result = check(capsys, path)
    assert result.status == 1
    # redis-py: "invalid username-password pair or user is disabled."
    assert result.err.startswith(f"{path}: meter_url: cannot connect: ")
    assert "password" in result.err
    assert PASSWORD not in result.out + result.err


def test_check_config_connect_postgres_and_redis_black_holes_each_get_their_line(
    tmp_path: Path, capsys: Capsys
) -> None:
    with (
        faulty(require_postgres(), Fault.BLACKHOLE) as database_url,
        faulty(run_redis_url(require_redis()), Fault.BLACKHOLE) as meter_url,
    ):
        path = write_config(tmp_path, database_url=database_url, meter_url=meter_url)
        result = check(capsys, path, "--timeout", str(TIMEOUT))
    assert result.status == 1
    assert result.err.splitlines() == [
        f"{path}: database_url: unreachable: timed out after {TIMEOUT} s",
        f"{path}: meter_url: unreachable: timed out after {TIMEOUT} s",
    ]
    assert result.elapsed < TIMEOUT + MARGIN


# A resolver that never answers for one name, in the child process only: the fault of a
# DNS server that swallows queries, which no local service here can play.
_SILENT_DNS = """
import socket, time
_real = socket.getaddrinfo
def _getaddrinfo(host, *args, **kwargs):
    if host == "silent-dns.example":
        time.sleep(60)
    return _real(host, *args, **kwargs)
socket.getaddrinfo = _getaddrinfo
"""


@pytest.mark.parametrize("key", ["database_url", "meter_url"], ids=["postgres", "redis"])
def test_check_config_connect_silent_dns_ends_at_the_bound(tmp_path: Path, key: str) -> None:
    (tmp_path / "sitecustomize.py").write_text(_SILENT_DNS, encoding="utf-8")
    urls = {"database_url": sqlite_url(tmp_path), "meter_url": None}
    urls[key] = (
        "postgresql://cg@silent-dns.example:5432/consent"
        if key == "database_url"
        else "redis://silent-dns.example:6379/0"
    )
    path = write_config(
        tmp_path, database_url=str(urls["database_url"]), meter_url=urls["meter_url"]
    )
    env = dict(child_env(), PYTHONPATH=str(tmp_path))
    started = time.monotonic()
    done = subprocess.run(
        [*consentgate_command(), "check-config", str(path), "--connect", "--timeout", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=50,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert f"{path}: {key}: unreachable: the name silent-dns.example did not resolve in 1 s" in (
        done.stderr
    )
    # Start-up of a Python process plus the bound; before, the exit waited for the lookup.
    assert elapsed < 1 + 8, elapsed
