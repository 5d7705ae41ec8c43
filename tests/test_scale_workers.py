"""Several workers, one truth: the demo under uvicorn with 2 workers on PostgreSQL + Redis.

10,000 consent decisions from 64 concurrent clients must leave exactly 10,000 ledger
rows, and a reader's meter must be the same whichever worker answers.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from tests.services import (
    free_port,
    fresh_postgres_schema,
    require_postgres,
    require_redis,
    run_redis_url,
)

from consentgate.storage.postgres import PostgresStorage

REPO = Path(__file__).resolve().parents[1]
DECISIONS = 10_000
CLIENTS = 64
DECISIONS_PER_CONNECTION = 25
METERED = ("harbour-dredging-vote", "ferry-timetable-change", "school-robotics-team")
FOURTH = "heatwave-water-authority"
# Who closes an idle keep-alive connection must be the client, never the server: the
# server's timer starts when it writes a response, the client's (httpx keepalive_expiry)
# only when its event loop gets round to reading it. With uvicorn's default of 5 s on
# both sides, a client loop that lags a few seconds (64 clients on a busy 2-core
# machine: seen up to 18 s) reuses a connection the server has just closed; the request
# then meets a reset socket: httpx.ReadError (BrokenPipeError underneath). So the server
# waits far longer (60 s, the usual proxy idle timeout) than the client keeps idle
# connections (5 s), and the race cannot happen. Production has the same rule behind a
# reverse proxy: uvicorn's --timeout-keep-alive above the proxy's idle timeout.
SERVER_KEEP_ALIVE_SECONDS = 60
CLIENT_KEEP_ALIVE_SECONDS = 5.0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, str]]:
    # This module's own schema and Redis key prefix: other tests and other runs on the
    # same servers see none of its rows or meter counts (and it needs no FLUSHDB).
    postgres, redis_url = require_postgres(), run_redis_url(require_redis())
    with fresh_postgres_schema(postgres) as database_url:
        asyncio.run(_migrate(database_url))  # the deploy step
        port = free_port()
        env = {
            **os.environ,
            # This checkout's package first: an installed consentgate (another
            # checkout's editable install) would otherwise serve in its place.
            "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
            "CONSENTGATE_SCALE_DATABASE_URL": database_url,
            "CONSENTGATE_SCALE_METER_URL": redis_url,
        }
        command = [
            sys.executable, "-m", "uvicorn", "tests.scale_app:create", "--factory",
            "--workers", "2", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log",
            "--timeout-keep-alive", str(SERVER_KEEP_ALIVE_SECONDS),
        ]  # fmt: skip
        process = subprocess.Popen(command, cwd=REPO, env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until_serving(base, process)
            yield base, database_url
        finally:
            process.terminate()
            process.wait(timeout=30)


async def _migrate(database_url: str) -> None:
    storage = PostgresStorage(database_url)
    await storage.migrate()
    await storage.close()


def _wait_until_serving(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"uvicorn exited with {process.returncode}")
        try:
            if httpx.get(base + "/consentgate/consent", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail("uvicorn with 2 workers did not start within 60 s")


async def _one_reader_decides(c: httpx.AsyncClient, token: str, n: int) -> str:
    """A new reader decides (no consent cookie: a new consent id); returns the worker.

    The CSRF cookie and token are kept from the client's first visit: a browser keeps
    them across pages too, and it halves the requests this test needs.
    """
    c.cookies.delete("cg_consent")
    action = ("accept_all", "reject_all", "save")[n % 3]
    for _attempt in range(5):
        response = await c.post(
            "/consentgate/consent",
            json={"action": action, "categories": ["analytics"]},
            headers={"x-csrf-token": token},
        )
        if response.status_code == 200:
            return response.headers["x-worker-pid"]
        # 503 means "not recorded, not granted": the reader may simply try again.
        assert response.status_code == 503, response.text
    pytest.fail("a decision failed five times")


async def _decide_many(base: str) -> list[str]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(DECISIONS):
        queue.put_nowait(n)
    workers: list[str] = []

    async def client_loop() -> None:
        # A fresh connection every few decisions, as browsers come and go: new
        # connections are what the two workers share out between them.
        while not queue.empty():
            limits = httpx.Limits(keepalive_expiry=CLIENT_KEEP_ALIVE_SECONDS)
            async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as c:
                token = (await c.get("/consentgate/consent")).json()["csrf_token"]
                for _ in range(DECISIONS_PER_CONNECTION):
                    if queue.empty():
                        break
                    workers.append(await _one_reader_decides(c, token, queue.get_nowait()))

    await asyncio.gather(*(client_loop() for _ in range(CLIENTS)))
    return workers


def test_scale_ten_thousand_decisions_from_64_clients_leave_ten_thousand_rows(
    server: tuple[str, str],
) -> None:
    base, database_url = server
    workers = asyncio.run(_decide_many(base))
    assert len(workers) == DECISIONS
    assert len(set(workers)) == 2, "both workers answered"
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT count(*), count(DISTINCT consent_id) FROM consent_ledger"
        ).fetchone()
    assert rows == (DECISIONS, DECISIONS)


def test_scale_meter_same_whichever_worker_answers(server: tuple[str, str]) -> None:
    base, _ = server

    async def scenario() -> tuple[set[str], list[bool], set[bool], set[bool], bool]:
        # No keep-alive: every request is a new connection. Sequential connections may
        # all land on one worker (accept() wakes the same waiter), so the checks run as
        # concurrent bursts, which keep both workers busy.
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as c:
            full = []
            for slug in METERED:
                page = await c.get(f"/articles/{slug}")
                full.append('id="consentgate-cta"' not in page.text)
            pids: set[str] = set()
            fourth_walled: set[bool] = set()
            reread_full: set[bool] = set()
            for _burst in range(5):
                pages = await asyncio.gather(
                    *(c.get(f"/articles/{FOURTH}") for _ in range(12)),
                    *(c.get(f"/articles/{METERED[0]}") for _ in range(12)),
                )
                pids.update(page.headers["x-worker-pid"] for page in pages)
                fourth_walled.update('id="consentgate-cta"' in p.text for p in pages[:12])
                reread_full.update('id="consentgate-cta"' not in p.text for p in pages[12:])
                if len(pids) == 2:
                    break
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as cleared:
            fresh = await cleared.get(f"/articles/{FOURTH}")  # cookies gone, same network
            fresh_walled = 'id="consentgate-cta"' in fresh.text
        return pids, full, fourth_walled, reread_full, fresh_walled

    pids, full, fourth_walled, reread_full, fresh_walled = asyncio.run(scenario())
    assert len(pids) == 2, "requests reached both workers"
    assert full == [True, True, True]
    assert fourth_walled == {True}, "the fourth article is walled on every worker"
    assert reread_full == {True}, "a counted article re-reads in full on every worker"
    assert fresh_walled, "the server meter in Redis remembers the network across workers"
