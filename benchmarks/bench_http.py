"""The gate measured end to end: uvicorn serving the bare and the gated app, over HTTP.

    .venv/bin/python benchmarks/bench_http.py [--rounds R] [--seconds S] [--json]

Two uvicorn processes (one worker each, httptools, asyncio loop, no access log) serve
the Starlette app of ``http_apps.py``: one bare, one wrapped by ConsentGate with an
SQLite ledger. Both run for the whole benchmark but are driven one at a time by a
bounded load generator: Debian's ``wrk`` (``-t1 -c32 --latency``) when it is on the
PATH, else a Python asyncio client (httpx, 32 requests in flight, fixed duration). Each
round runs every scenario on the bare server then on the gated one, so that a slow
moment of the machine hits both; the table reports the median of the rounds.

Scenarios (see benchmarks/README.md):

* ``json-decided``     a reader who accepted everything fetches ~2 KB of JSON;
* ``article-decided``  the same reader reads the ~50 KB article (the same bytes each time:
                       after the first response the gate's memo of whole pages answers);
* ``article-decided-unique``  the same, with bytes that differ in every response (a
                       token in the page), so every response is parsed;
* ``article-first``    a first visit (no cookie): the banner is inserted;
* ``article-walled``   the decided reader on a registration-only article: cut after the lead;
* ``decisions``        POST /consentgate/consent (accept all), each request without a
                       consent cookie, so each makes a new consent id and a ledger row
                       (gated only: decisions/s, and the ledger rows against the answers).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from bench_middleware import BROWSER_HEADERS, machine_info
from http_apps import DB_ENV, LAST_PARAGRAPH_MARKER, URL_ENV
from http_load import CONNECTIONS, Load, Request, drive

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_ROUNDS = 3
DEFAULT_SECONDS = 5
WARMUP_SECONDS = 1.0
DECISIONS_TARGET = 2000.0
VARNISHD = Path("/usr/sbin/varnishd")  # Debian's; elsewhere on PATH
UVICORN_FLAGS = [
    "--http", "httptools", "--loop", "asyncio", "--no-access-log", "--log-level", "warning",
]  # fmt: skip
# A browser's request headers (bench_middleware.py's, less Host: the client sets it).
READER_HEADERS = {k.decode(): v.decode() for k, v in BROWSER_HEADERS if k != b"host"}


# --------------------------------------------------------------------------------------
# The servers: started once, checked ready, always stopped.


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def server_cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a server process and its descendants (uvicorn's workers),
    from /proc; None where there is no /proc. Read around each run: on two cores the
    load generator can be the bottleneck (the bare server then idles part of the time),
    so req/s alone would compare the load generator's limits, not the servers'."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICKS
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError, IndexError):
            if current == pid:
                return None
    return total


def worker_cpu_seconds(pid: int) -> list[float]:
    """The CPU of each of uvicorn's worker processes (the server's children that run
    ``spawn_main``; not its resource tracker), in pid order; [] with one worker (it
    serves in the main process) or without /proc. The workers share one listening
    socket and a connection stays with the worker that accepted it, so wrk's 32
    connections may be split unevenly: the split says how much of the second core the
    servers really had."""
    try:
        children = sorted(
            int(c)
            for task in Path(f"/proc/{pid}/task").iterdir()
            for c in (task / "children").read_text().split()
        )
    except OSError:
        return []
    seconds = []
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" not in cmdline and b"\0--worker\0" not in cmdline:
                continue
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            seconds.append((int(fields[11]) + int(fields[12])) / _TICKS)
        except (OSError, ValueError, IndexError):
            continue
    return seconds


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start(
    name: str, factory: str, workdir: Path, env: dict[str, str], workers: int, reuse_port: bool
) -> Server:
    port = _free_port()
    log = workdir / f"{name}.log"
    if reuse_port:  # a socket per worker, the kernel spreading connections (see there)
        command = [sys.executable, str(HERE / "reuseport_serve.py"), "--app-dir", str(HERE),
                   "--port", str(port), "--workers", str(workers), factory]  # fmt: skip
    else:
        command = [sys.executable, "-m", "uvicorn", "--factory", "--app-dir", str(HERE), factory,
                   "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                   *UVICORN_FLAGS]  # fmt: skip
    with log.open("wb") as out:
        # A session of its own: Ctrl-C reaches only this script, which then stops the
        # server itself (and its whole group), so nothing is left listening.
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return Server(name, f"http://127.0.0.1:{port}", process, log)


def _wait_ready(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            if httpx.get(server.url + "/api/items", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    tail = server.log.read_text(errors="replace")[-2000:]
    raise SystemExit(f"the {server.name} server did not come up on {server.url}:\n{tail}")


def _stop(server: Server) -> None:
    if server.process.poll() is not None:
        return
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
    except ProcessLookupError:
        pass


@contextmanager
def servers(
    workdir: Path, ledger: Ledger, workers: int, reuse_port: bool = False
) -> Iterator[tuple[Server, Server]]:
    # This checkout's src and the benchmarks folder first, whatever the venv has installed.
    path = os.pathsep.join([str(ROOT / "src"), str(HERE), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path.rstrip(os.pathsep), DB_ENV: str(ledger.path)}
    if ledger.url is not None:
        env[URL_ENV] = ledger.url
    started: list[Server] = []
    try:
        started.append(_start("bare", "http_apps:bare", workdir, env, workers, reuse_port))
        started.append(_start("gated", "http_apps:gated", workdir, env, workers, reuse_port))
        for server in started:
            _wait_ready(server)
        yield started[0], started[1]
    finally:
        for server in started:
            _stop(server)


# --------------------------------------------------------------------------------------
# Set-up through the gated server: a real decision, then a check of every response.


_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def _csrf(client: httpx.Client) -> tuple[str, str]:
    """The settings page's form token and its cg_csrf cookie, as a reader loads them."""
    page = client.get("/consentgate/settings", headers={"accept": "text/html"})
    match = _CSRF_FIELD.search(page.text)
    cookie = client.cookies.get("cg_csrf")
    if page.status_code != 200 or not match or not cookie:
        raise SystemExit(f"GET /consentgate/settings: {page.status_code}, no form token or cookie")
    return match.group(1), cookie


def decision_form(token: str) -> str:
    return urlencode({"action": "accept_all", "csrf_token": token, "next": "/article"})


def decided_cookie(gated: Server) -> str:
    """The Cookie header of a reader who accepted everything (a real POST, a real row)."""
    with httpx.Client(base_url=gated.url, timeout=10) as client:
        token, csrf = _csrf(client)
        posted = client.post(
            "/consentgate/consent",
            content=decision_form(token),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        consent = posted.cookies.get("cg_consent")
        if posted.status_code != 303 or not consent:
            raise SystemExit(f"POST /consentgate/consent: {posted.status_code}, no cg_consent")
    return f"cg_consent={consent}; cg_csrf={csrf}"


def decisions_request(gated: Server) -> Request:
    """A consent POST with a valid token and no consent cookie: a new consent id each time."""
    with httpx.Client(base_url=gated.url, timeout=10) as client:
        token, csrf = _csrf(client)
    return Request(
        "/consentgate/consent",
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"cg_csrf={csrf}"},
        method="POST",
        body=decision_form(token),
    )


def _expect(condition: bool, scenario: str, what: str) -> None:
    if not condition:
        raise SystemExit(f"sanity check failed for {scenario}: {what}")


def check(name: str, bare: Server, gated: Server, request: Request) -> None:
    """One request to each server: never time a gate that did not do its work."""
    plain = httpx.get(bare.url + request.path, headers=request.headers, timeout=10)
    seen = httpx.get(gated.url + request.path, headers=request.headers, timeout=10)
    _expect(plain.status_code == 200 and seen.status_code == 200, name, "status not 200")
    body = seen.content
    if request.path == "/api/items":
        _expect(body == plain.content, name, "the JSON was changed")
        return
    _expect(LAST_PARAGRAPH_MARKER in plain.content, name, "the bare article is incomplete")
    if name == "article-walled":
        _expect(b'id="consentgate-cta"' in body, name, "no call to action: not cut")
        _expect(LAST_PARAGRAPH_MARKER not in body, name, "the last paragraph went out")
        return
    _expect(LAST_PARAGRAPH_MARKER in body, name, "the article was cut")
    banner = b'id="consentgate-banner"' in body
    if "Cookie" in request.headers:
        _expect(not banner, name, "banner shown to a decided reader")
        _expect(b"consentgate-settings-link" in body, name, "settings link not inserted")
    else:
        _expect(banner, name, "no banner on a first visit")


@contextmanager
def _cache(gated: Server, workdir: Path) -> Iterator[str]:
    """Varnish with the published VCL in front of the gated server (the tests' harness:
    the VCL copy with only the backend changed, a process group stopped on exit)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.varnish_support import varnish

    with varnish(gated.url, workdir / "varnish") as cache:
        yield cache.base_url


def check_cached(name: str, bare: Server, cache_url: str, request: Request) -> None:
    """Through the cache, a first visit gets the banner, and the second is a hit."""
    headers = dict(request.headers)
    first = httpx.get(cache_url + request.path, headers=headers, timeout=10.0)
    second = httpx.get(cache_url + request.path, headers=headers, timeout=10.0)
    plain = httpx.get(bare.url + request.path, headers=headers, timeout=10.0)
    _expect(first.status_code == 200 and plain.status_code == 200, name, "status")
    _expect(b'id="consentgate-banner"' in first.content, name, "no banner through the cache")
    _expect(first.headers.get("consentgate-class") == "u", name, "not marked shareable")
    _expect(second.headers.get("x-cache", "").startswith("HIT"), name, "second visit not a hit")


@dataclass
class Ledger:
    """Where the gated server's ledger is: a SQLite file, or a PostgreSQL URL whose
    schema (``options=-csearch_path=…``) this run made and drops afterwards."""

    path: Path
    url: str | None = None
    schema: str | None = None

    def rows(self) -> int:
        if self.url is None:
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as db:
                count: int = db.execute("SELECT COUNT(*) FROM consent_ledger").fetchone()[0]
            return count
        import psycopg

        with psycopg.connect(self.url) as conn:
            row = conn.execute("SELECT count(*) FROM consent_ledger").fetchone()
        return int(row[0]) if row is not None else 0


@contextmanager
def ledger_at(workdir: Path, database_url: str | None) -> Iterator[Ledger]:
    path = workdir / "ledger.db"
    if database_url is None:
        yield Ledger(path)
        return
    import psycopg

    schema = f"bench_http_{os.getpid()}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')  # our own name, digits only
    separator = "&" if "?" in database_url else "?"
    url = f"{database_url}{separator}options=-csearch_path%3D{schema}"
    try:
        yield Ledger(path, url, schema)
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def settled_rows(ledger: Ledger, timeout: float = 5.0) -> int:
    """The row count once the requests still in flight when a load stopped have landed."""
    rows, deadline = ledger.rows(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = ledger.rows()
        if now == rows:
            break
        rows = now
    return rows


# --------------------------------------------------------------------------------------
# The run.


@dataclass
class Scenario:
    name: str
    description: str
    request: Request
    target: float  # gated/bare ratio, or decisions/s for the gated-only scenario
    gated_only: bool = False
    #: Gated through Varnish with the published VCL (examples/varnish/consentgate.vcl).
    cached: bool = False
    rounds: dict[str, list[Load]] = field(default_factory=lambda: {"bare": [], "gated": []})
    ledger: list[dict[str, int]] = field(default_factory=list)


SCENARIOS = (
    "json-decided",
    "article-decided",
    "article-decided-unique",
    "article-first",
    "article-walled",
    "article-first-cached",
    "decisions",
)


def scenarios(cookie: str, decisions: Request) -> list[Scenario]:
    decided = {**READER_HEADERS, "Cookie": cookie}
    return [
        Scenario("json-decided", "decided reader, 2 KB JSON", Request("/api/items", decided), 0.9),
        Scenario("article-decided", "decided reader, 50 KB article",
                 Request("/article", decided), 0.5),
        Scenario("article-decided-unique",
                 "decided reader, 50 KB article whose bytes differ per response",
                 Request("/unique/article", decided), 0.5),
        Scenario("article-first", "first visit (banner), 50 KB article",
                 Request("/article", dict(READER_HEADERS)), 0.4),
        Scenario("article-walled", "registration-only article, cut after the lead",
                 Request("/premium/article", decided), 0.25),
        Scenario("article-first-cached", "first visit, public 50 KB article, gate behind Varnish",
                 Request("/public/article", dict(READER_HEADERS)), 0.9, cached=True),
        Scenario("decisions", "POST /consentgate/consent, a new consent id each",
                 decisions, DECISIONS_TARGET, gated_only=True),
    ]  # fmt: skip


def run(
    rounds: int,
    seconds: float,
    use_wrk: bool,
    chosen: list[str],
    progress: bool,
    database_url: str | None = None,
    workers: int = 1,
    reuse_port: bool = False,
) -> dict[str, Any]:
    def say(text: str) -> None:
        if progress:
            print(text, file=sys.stderr, flush=True)

    load_before = round(os.getloadavg()[0], 2)  # other work on the machine, before ours
    with tempfile.TemporaryDirectory(prefix="consentgate-bench-http-") as tmp:
        workdir = Path(tmp)
        with (
            ExitStack() as stack,
            ledger_at(workdir, database_url) as database,
            servers(workdir, database, workers, reuse_port) as (bare, gated),
        ):
            plan = scenarios(decided_cookie(gated), decisions_request(gated))
            plan = [scenario for scenario in plan if scenario.name in chosen]
            no_varnish = shutil.which("varnishd") is None and not VARNISHD.exists()
            if no_varnish and any(scenario.cached for scenario in plan):
                say("varnishd not installed: the cached scenario is left out")
                plan = [scenario for scenario in plan if not scenario.cached]
            cache_url = (
                stack.enter_context(_cache(gated, workdir))
                if any(scenario.cached for scenario in plan)
                else None
            )
            for scenario in plan:
                if scenario.cached:
                    check_cached(scenario.name, bare, cache_url or "", scenario.request)
                elif not scenario.gated_only:
                    check(scenario.name, bare, gated, scenario.request)
            say(f"servers up ({bare.url} bare, {gated.url} gated); checks passed; warming up")

            def targets(scenario: Scenario) -> list[tuple[str, str]]:
                gated_url = cache_url if scenario.cached and cache_url else gated.url
                if scenario.gated_only:
                    return [("gated", gated_url)]
                return [("bare", bare.url), ("gated", gated_url)]

            for scenario in plan:  # imports, caches, the first connections: not timed
                for _, url in targets(scenario):
                    drive(url, scenario.request, WARMUP_SECONDS, workdir, use_wrk)
            started = time.perf_counter()
            for round_index in range(rounds):
                for scenario in plan:
                    for name, url in targets(scenario):
                        before = settled_rows(database) if scenario.gated_only else 0
                        server = bare if name == "bare" else gated
                        cpu_before = (
                            None if scenario.cached else server_cpu_seconds(server.process.pid)
                        )
                        workers_before = worker_cpu_seconds(server.process.pid)
                        load = drive(url, scenario.request, seconds, workdir, use_wrk)
                        cpu_after = (
                            None if scenario.cached else server_cpu_seconds(server.process.pid)
                        )
                        workers_after = worker_cpu_seconds(server.process.pid)
                        if cpu_before is not None and cpu_after is not None and load.requests:
                            load.server_cpu_us = (cpu_after - cpu_before) / load.requests * 1e6
                        load.worker_cpu_share = _shares(workers_before, workers_after)
                        if load.non_2xx_3xx:
                            raise SystemExit(
                                f"{scenario.name} on {name}: {load.non_2xx_3xx} answers "
                                "were not 2xx/3xx; a benchmark of errors measures nothing"
                            )
                        if scenario.gated_only:
                            rows = settled_rows(database) - before
                            answered = load.requests if load.answered is None else load.answered
                            sent = answered if load.sent is None else load.sent
                            scenario.ledger.append(
                                {"rows": rows, "answered": answered, "sent": sent}
                            )
                        scenario.rounds[name].append(load)
                say(f"  round {round_index + 1}/{rounds} ({time.perf_counter() - started:.0f} s)")
    result = report(plan, rounds, seconds, use_wrk)
    result["machine"]["load_average_1min_at_start"] = load_before
    if reuse_port:
        result["server"] = f"uvicorn, {workers} processes on one port (SO_REUSEPORT) " + " ".join(
            UVICORN_FLAGS
        )
    else:
        result["server"] = f"uvicorn --workers {workers} " + " ".join(UVICORN_FLAGS)
    result["ledger"] = "postgresql" if database_url else "sqlite"
    return result


def _shares(before: list[float], after: list[float]) -> list[float] | None:
    """Each worker's part (%) of the workers' CPU between two readings."""
    if len(before) < 2 or len(before) != len(after):
        return None
    used = [max(0.0, end - start) for start, end in zip(before, after, strict=True)]
    total = sum(used)
    return [round(100 * part / total, 1) for part in used] if total > 0 else None


def _median(loads: list[Load], attribute: str) -> float:
    return statistics.median(float(getattr(load, attribute)) for load in loads)


def report(plan: list[Scenario], rounds: int, seconds: float, use_wrk: bool) -> dict[str, Any]:
    results = []
    for scenario in plan:
        entry: dict[str, Any] = {
            "scenario": scenario.name,
            "description": scenario.description,
            "target": scenario.target,
        }
        for variant, loads in scenario.rounds.items():
            if loads:
                cpu = [load.server_cpu_us for load in loads if load.server_cpu_us is not None]
                entry[variant] = {
                    "server_cpu_us": round(statistics.median(cpu), 1) if cpu else None,
                    "requests_per_s": round(_median(loads, "requests_per_s"), 1),
                    "p50_ms": round(_median(loads, "p50_ms"), 2),
                    "p99_ms": round(_median(loads, "p99_ms"), 2),
                    "rounds": [asdict(load) for load in loads],
                }
        if scenario.gated_only:
            entry["ledger"] = scenario.ledger
            entry["met"] = entry["gated"]["requests_per_s"] >= scenario.target
        else:
            entry["ratio"] = round(
                entry["gated"]["requests_per_s"] / entry["bare"]["requests_per_s"], 3
            )
            entry["met"] = entry["ratio"] >= scenario.target
            bare_cpu, gated_cpu = entry["bare"]["server_cpu_us"], entry["gated"]["server_cpu_us"]
            # The rate ratio of two servers each given a core of its own: the bare
            # server's CPU per request over the gated one's.
            entry["cpu_ratio"] = round(bare_cpu / gated_cpu, 3) if bare_cpu and gated_cpu else None
        results.append(entry)
    machine = machine_info()
    for package in ("uvicorn", "httptools", "starlette", "httpx"):
        try:
            machine[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            machine[package] = None
    if use_wrk:
        version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        machine["wrk"] = (version.stdout or version.stderr).split("\n", 1)[0].strip()
    return {
        "benchmark": "bench_http",
        "load_generator": f"wrk -t1 -c{CONNECTIONS}" if use_wrk else f"python httpx x{CONNECTIONS}",
        "rounds": rounds,
        "seconds": seconds,
        "server": "uvicorn " + " ".join(UVICORN_FLAGS),
        "machine": machine,
        "results": results,
    }


def _us(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def render_table(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"consentgate end to end: {report['server']}; ledger {report.get('ledger', 'sqlite')}; "
        f"{report['load_generator']}, "
        f"{report['rounds']} rounds x {report['seconds']:g} s, median of the rounds",
        f"{machine['cpu']}, {machine['nproc']} CPUs, {machine['implementation']} "
        f"{machine['python']}, uvicorn {machine['uvicorn']}, httptools {machine['httptools']}",
        "",
        "| scenario | what | bare req/s | gated req/s | ratio | target | bare p50/p99 ms "
        "| gated p50/p99 ms | server CPU µs/req bare / gated | CPU ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        gated = r["gated"]
        gated_ms = f"{gated['p50_ms']:.1f} / {gated['p99_ms']:.1f}"
        met = "" if r["met"] else " (not met)"
        gated_cpu = _us(gated.get("server_cpu_us"))
        if "bare" in r:
            bare = r["bare"]
            cpu_ratio = f"{r['cpu_ratio']:.2f}x" if r.get("cpu_ratio") else ""
            lines.append(
                f"| {r['scenario']} | {r['description']} | {bare['requests_per_s']:,.0f} "
                f"| {gated['requests_per_s']:,.0f} | {r['ratio']:.2f}x | >= {r['target']}x{met} "
                f"| {bare['p50_ms']:.1f} / {bare['p99_ms']:.1f} | {gated_ms} "
                f"| {_us(bare.get('server_cpu_us'))} / {gated_cpu} | {cpu_ratio} |"
            )
        else:
            lines.append(
                f"| {r['scenario']} | {r['description']} | | {gated['requests_per_s']:,.0f}/s "
                f"| | >= {r['target']:,.0f}/s{met} | | {gated_ms} | {gated_cpu} | |"
            )
    for r in report["results"]:
        for index, ledger in enumerate(r.get("ledger", []), 1):
            # wrk stops with up to one request per connection in flight: the server
            # still records those, unanswered (wrk's own count of requests handed to the
            # sockets may include one prepared but never written). So answered <= rows
            # <= sent; rows short of the answers would be acknowledged decisions lost.
            rows, answered, sent = ledger["rows"], ledger["answered"], ledger["sent"]
            if rows == answered:
                verdict = "rows == answered"
            elif answered < rows <= sent:
                verdict = f"ok: +{rows - answered} recorded for requests in flight at the stop"
            else:
                verdict = f"MISMATCH (rows - answered = {rows - answered:+d})"
            rounds = r.get("gated", {}).get("rounds", [])
            share = rounds[index - 1].get("worker_cpu_share") if index <= len(rounds) else None
            split = (
                "; workers' CPU " + " / ".join(f"{part:.0f} %" for part in share) if share else ""
            )
            lines.append(
                f"{r['scenario']} round {index}: ledger rows {rows:,}, answered decisions "
                f"{answered:,}, sent {sent:,}: {verdict}{split}"
            )
    before, after = machine.get("load_average_1min_at_start"), machine.get("load_average_1min")
    cpus = machine.get("nproc") or 1
    lines.append(
        f"Load average (1 min): {before} before the run, {after} at the end (the servers "
        "and wrk included)."
    )
    if before is not None and before > cpus / 2:
        lines.append(
            f"WARNING: the machine was busy before the run (load {before} on {cpus} CPUs): "
            "the servers and the load generator competed with other work; rerun when idle."
        )
    return "\n".join(lines)


def _interrupted(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so that the servers are stopped on the way out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"interleaved rounds; the median is reported (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument(
        "--seconds",
        type=int,  # wrk's -d counts whole seconds
        default=DEFAULT_SECONDS,
        help=f"duration of each run in seconds (default {DEFAULT_SECONDS})",
    )
    parser.add_argument(
        "--python-client",
        action="store_true",
        help="use the Python client even when wrk is installed",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        metavar="NAME",
        help="run only this scenario (repeatable; default all: " + ", ".join(SCENARIOS) + ")",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="the gated server's ledger in this PostgreSQL database (a schema of its own, "
        "dropped afterwards) instead of a SQLite file",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn workers per server (default 1)"
    )
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="serve with one uvicorn process per worker, each with its own SO_REUSEPORT "
        "socket, so the kernel spreads wrk's connections over the workers (Linux; see "
        "reuseport_serve.py)",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    args = parser.parse_args(argv)  # fmt: skip
    if args.rounds < 1 or args.seconds < 1:
        parser.error("--rounds must be at least 1 and --seconds at least 1")
    use_wrk = not args.python_client and shutil.which("wrk") is not None
    signal.signal(signal.SIGTERM, _interrupted)
    chosen = args.scenario or list(SCENARIOS)
    try:
        result = run(
            args.rounds,
            args.seconds,
            use_wrk,
            chosen,
            progress=not args.json,
            database_url=args.database_url,
            workers=args.workers,
            reuse_port=args.reuse_port,
        )
    except KeyboardInterrupt:  # the servers are already stopped: no traceback needed
        print("interrupted; servers stopped", file=sys.stderr)
        return 130
    print(json.dumps(result, indent=2) if args.json else render_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
