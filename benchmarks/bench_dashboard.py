"""How fast the dashboard answers over a big ledger: 10 M rows in a SQLite file.

    .venv/bin/python benchmarks/bench_dashboard.py [--rows N] [--span-days D] [--db PATH]
                                                   [--keep] [--stream] [--json]
                                                   [--postgres URL]

Builds a ledger of ``--rows`` consent rows (default 10,000,000) spread evenly over the
last ``--span-days`` days (default 365), about 1.5 rows per consent id, written at schema
version 3 with ``executemany`` (no rollups yet), then times:

* ``migrate``     the version-4 migration, which computes the rollups of every row
                  already in the ledger (once, when an operator runs `consentgate migrate`);
* ``stats-30d``   ``compute_stats`` for the dashboard's default window (the last 30 days,
                  until now), answered from the rollups: median of 7;
* ``http-30d``    ``GET /consentgate/admin?days=30`` through ConsentGate (bearer token),
                  the page the operator sees: median of 7;
* ``http-366d``   the same for the longest window the dashboard accepts;
* ``insert``      ``record_consent`` with the rollup trigger, per row (median of 2,000);
* ``stream-30d``  with ``--stream``: the same 30-day figures read row by row from the
                  ledger (what the dashboard did before the rollups; minutes at 10 M).

The database is a temporary file unless ``--db`` names one (``--keep`` keeps it, and a
later run with the same ``--db`` and ``--rows`` reuses it instead of building again).
With ``--postgres postgresql://…`` the same runs in a new schema of that database
(rows from ``generate_series``), dropped afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

try:
    from consentgate import Config, ConsentGate
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    from consentgate import Config, ConsentGate

import httpx

from consentgate.operator.stats import compute_stats
from consentgate.operator.store import Window
from consentgate.storage import ConsentRecord, SQLiteStorage, storage_from_url
from consentgate.storage.sql.store import SQLStorage

SECRET = "bench-" + "x" * 40
TOKEN = "bench-admin-token-" + "y" * 40
CATEGORIES = ("necessary", "preferences", "analytics", "marketing")
GRANTED_SETS = [
    ["necessary"],
    ["necessary", "analytics"],
    ["necessary", "preferences", "analytics", "marketing"],
    ["necessary", "preferences"],
]
ROUNDS = 7


# The rows are made by SQLite itself (a recursive CTE): 10 M rows in minutes, not the
# half hour that building 10 M Python tuples takes on a small machine.
_GENERATE = """
WITH RECURSIVE seq(n) AS (SELECT :first UNION ALL SELECT n + 1 FROM seq WHERE n < :last)
INSERT INTO consent_ledger (consent_id, user_id, action, granted, denied, policy_version,
    banner_text_sha256, language, region_mode, method, ip_hmac, user_agent, recorded_at)
SELECT printf('%032x', abs(random()) % :ids), NULL,
    CASE n % 7 WHEN 0 THEN 'reject' WHEN 1 THEN 'grant' WHEN 2 THEN 'grant'
        WHEN 3 THEN 'update' WHEN 4 THEN 'gpc' WHEN 5 THEN 'withdraw' ELSE 'reject' END,
    CASE (n / 7) % 4 WHEN 0 THEN :g0 WHEN 1 THEN :g1 WHEN 2 THEN :g2 ELSE :g3 END,
    CASE (n / 7) % 4 WHEN 0 THEN :d0 WHEN 1 THEN :d1 WHEN 2 THEN :d2 ELSE :d3 END,
    '1', :banner, 'en', 'opt-in',
    CASE n % 7 WHEN 2 THEN 'js' WHEN 4 THEN 'gpc' WHEN 6 THEN 'js' ELSE 'form' END,
    NULL, NULL,
    strftime('%Y-%m-%dT%H:%M:%S', :start + n * :step, 'unixepoch')
        || printf('.%06dZ', CAST((:start + n * :step) * 1000000 AS INTEGER) % 1000000)
FROM seq
"""
CHUNK = 1_000_000


def build(path: Path, total: int, span_days: int, now: datetime) -> float:
    """Write ``total`` rows at schema version 3, oldest first; seconds taken."""
    began = time.perf_counter()
    asyncio.run(_migrate(path, target=3))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # building only: the benchmark is not evidence
    params: dict[str, Any] = {
        "ids": max(1, int(total / 1.5)),  # about 1.5 rows per consent id
        "banner": "b" * 64,
        "start": (now - timedelta(days=span_days)).timestamp(),
        "step": span_days * 86_400 / total,
    }
    for k, granted in enumerate(GRANTED_SETS):
        params[f"g{k}"] = json.dumps(granted)
        params[f"d{k}"] = json.dumps([c for c in CATEGORIES if c not in granted])
    for first in range(0, total, CHUNK):
        last = min(total, first + CHUNK) - 1
        conn.execute("BEGIN")
        conn.execute(_GENERATE, {**params, "first": first, "last": last})
        conn.execute("COMMIT")
        print(f"\r  {last + 1:,} rows", end="", file=sys.stderr, flush=True)
    conn.close()
    print(file=sys.stderr)
    return time.perf_counter() - began


_PG_GENERATE = """
INSERT INTO consent_ledger (consent_id, user_id, action, granted, denied, policy_version,
    banner_text_sha256, language, region_mode, method, ip_hmac, user_agent, recorded_at)
SELECT lpad(to_hex((random() * %(ids)s)::bigint), 32, '0'), NULL,
    (ARRAY['reject', 'grant', 'grant', 'update', 'gpc', 'withdraw', 'reject'])[n %% 7 + 1],
    ARRAY[(ARRAY['necessary', 'analytics', 'marketing', 'preferences'])[(n / 7) %% 4 + 1]],
    ARRAY[]::text[], '1', %(banner)s, 'en', 'opt-in',
    (ARRAY['form', 'form', 'js', 'form', 'gpc', 'form', 'js'])[n %% 7 + 1], NULL, NULL,
    to_timestamp(%(start)s + n * %(step)s)
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
"""


def build_postgres(url: str, raw_url: str, total: int, span_days: int, now: datetime) -> float:
    """Like :func:`build`, in PostgreSQL (granted sets simplified to one category)."""
    import psycopg

    began = time.perf_counter()
    asyncio.run(_migrate_url(url, target=3))
    params: dict[str, Any] = {
        "ids": max(1, int(total / 1.5)),
        "banner": "b" * 64,
        "start": (now - timedelta(days=span_days)).timestamp(),
        "step": span_days * 86_400 / total,
    }
    with psycopg.connect(raw_url, autocommit=True) as conn:
        for first in range(0, total, CHUNK):
            last = min(total, first + CHUNK) - 1
            conn.execute(_PG_GENERATE, {**params, "first": first, "last": last})
            print(f"\r  {last + 1:,} rows", end="", file=sys.stderr, flush=True)
        conn.execute("VACUUM ANALYZE consent_ledger")
    print(file=sys.stderr)
    return time.perf_counter() - began


async def _migrate_url(url: str, target: int | None = None) -> list[int]:
    storage = storage_from_url(url)
    try:
        if target is None:
            return await storage.migrate()
        # An older version (to time a migration): the SQL backends' own parameter.
        if not isinstance(storage, SQLStorage):
            raise SystemExit(f"{type(storage).__name__} cannot stop at schema version {target}")
        return await storage.migrate(target)
    finally:
        await storage.close()


async def _migrate(path: Path, target: int | None = None) -> list[int]:
    storage = SQLiteStorage(path)
    try:
        return await (storage.migrate() if target is None else storage.migrate(target))
    finally:
        await storage.close()


async def _timed(job: Any, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        await job()
        times.append(time.perf_counter() - began)
    return times


async def measure(url: str, *, stream: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    window = Window(today - timedelta(days=29), None)
    storage = storage_from_url(url)
    await storage.open()
    try:

        async def stats() -> None:
            await compute_stats(storage, window, categories=CATEGORIES, now=now)

        results["stats-30d"] = await _timed(stats, ROUNDS)
        figures = await compute_stats(storage, window, categories=CATEGORIES, now=now)
        results["rows-in-30d"] = figures.decisions
        results["ids-in-30d"] = figures.consent_ids
        if stream:

            async def streamed() -> None:
                await compute_stats(storage, window, categories=CATEGORIES, rollups=False)

            results["stream-30d"] = await _timed(streamed, 1)
    finally:
        await storage.close()

    config = Config.from_mapping(
        {
            "secret_keys": [SECRET],
            "database_url": url,
            "admin": {"token_sha256": hashlib.sha256(TOKEN.encode()).hexdigest()},
        }
    )

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    gate = ConsentGate(inner, config=config)
    transport = httpx.ASGITransport(app=gate)
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as c:
        for days in (30, 366):

            async def page(days: int = days) -> None:
                response = await c.get("/consentgate/admin", params={"days": days}, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"dashboard answered {response.status_code}")

            results[f"http-{days}d"] = await _timed(page, ROUNDS)

    # The trigger's cost on the write path: one record_consent per consent POST.
    storage = storage_from_url(url)
    await storage.open()
    try:
        rec = ConsentRecord(
            consent_id="f" * 32, user_id=None, action="grant", granted=("necessary",),
            denied=(), policy_version="1", banner_text_sha256="b" * 64, language="en",
            region_mode="opt-in", method="form", ip_hmac=None, user_agent=None,
            recorded_at=now,
        )  # fmt: skip

        async def insert() -> None:
            await storage.record_consent(rec)

        results["insert"] = await _timed(insert, 2000)
    finally:
        await storage.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--span-days", type=int, default=365)
    parser.add_argument("--db", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--stream", action="store_true", help="also time the row stream")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--postgres", metavar="URL", default=None)
    args = parser.parse_args()
    if args.postgres:
        return main_postgres(args)

    directory = None
    path = args.db
    if path is None:
        directory = tempfile.TemporaryDirectory(prefix="cg-bench-dashboard-")
        path = Path(directory.name) / "ledger.db"
    now = datetime.now(UTC)
    report: dict[str, Any] = {
        "rows": args.rows,
        "span_days": args.span_days,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
    }
    try:
        existing = 0
        if path.exists():
            conn = sqlite3.connect(path)
            existing = conn.execute("SELECT count(*) FROM consent_ledger").fetchone()[0]
            conn.close()
        # A kept file has its rows plus the 2,000 the insert timing added per run.
        if not args.rows <= existing < args.rows + 100_000:
            path.unlink(missing_ok=True)
            print(f"building {args.rows:,} rows in {path} …", file=sys.stderr)
            report["build_seconds"] = round(build(path, args.rows, args.span_days, now), 1)
            began = time.perf_counter()
            asyncio.run(_migrate(path))
            report["migrate_seconds"] = round(time.perf_counter() - began, 1)
        results = asyncio.run(measure(f"sqlite:///{path}", stream=args.stream))
    finally:
        if directory is not None and not args.keep:
            directory.cleanup()

    return _report(report, results, as_json=args.json)


def main_postgres(args: argparse.Namespace) -> int:
    import psycopg

    schema = "cg_bench_" + os.urandom(4).hex()
    with psycopg.connect(args.postgres, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in args.postgres else "?"
    raw_url = f"{args.postgres}{sep}options=-csearch_path%3D{schema}"
    url = f"{raw_url}&call_timeout=600&statement_timeout=600"
    now = datetime.now(UTC)
    report: dict[str, Any] = {"rows": args.rows, "span_days": args.span_days, "backend": "postgres"}
    try:
        print(f"building {args.rows:,} rows in schema {schema} …", file=sys.stderr)
        report["build_seconds"] = round(
            build_postgres(url, raw_url, args.rows, args.span_days, now), 1
        )
        began = time.perf_counter()
        asyncio.run(_migrate_url(url))
        report["migrate_seconds"] = round(time.perf_counter() - began, 1)
        results = asyncio.run(measure(url, stream=args.stream))
    finally:
        if not args.keep:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return _report(report, results, as_json=args.json)


def _report(report: dict[str, Any], results: dict[str, Any], *, as_json: bool) -> int:
    for key, value in results.items():
        if isinstance(value, list):
            report[f"{key}_median_ms"] = round(statistics.median(value) * 1000, 3)
            report[f"{key}_max_ms"] = round(max(value) * 1000, 3)
        else:
            report[key] = value
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        width = max(len(k) for k in report)
        for key, value in report.items():
            print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
