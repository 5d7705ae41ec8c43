"""The load generators of ``bench_http.py``: wrk, or a Python client giving the same figures.

``drive()`` runs one bounded load (32 connections, a fixed duration) against one server
and returns requests/s, the median and 99th-percentile latency and, for the consent
POST, how many decisions were answered and sent. wrk (Debian's ``wrk``, ``-t1``) is the
one to use: the Python client (httpx) spends more CPU per request than the server does
on the cheap routes, so on those it measures itself as much as the server.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path

import httpx

CONNECTIONS = 32


@dataclass
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx_3xx: int = 0
    socket_errors: int = 0
    answered: int | None = None  # decisions: 303/200 answers counted one by one
    sent: int | None = None  # decisions: requests written, answered or still in flight
    #: The server's CPU (user + system) per request during the run, when /proc says.
    server_cpu_us: float | None = None
    #: Each uvicorn worker's part (%) of the server's CPU during the run (2+ workers).
    worker_cpu_share: list[float] | None = None


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    method: str = "GET"
    body: str = ""


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> Load:
    """The figures of ``wrk --latency`` output (and our Lua script's status counts)."""

    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if not match:
            raise SystemExit(f"unexpected wrk output (no {pattern!r}):\n{output}")
        return match

    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    answered = re.search(r"^consentgate-answered (\d+) sent (\d+)$", output, re.MULTILINE)
    return Load(
        requests_per_s=float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=_duration_ms(find(r"^\s+50%\s+(\S+)").group(1)),
        p99_ms=_duration_ms(find(r"^\s+99%\s+(\S+)").group(1)),
        requests=int(find(r"^\s+(\d+) requests in").group(1)),
        non_2xx_3xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
        answered=int(answered.group(1)) if answered else None,
        sent=int(answered.group(2)) if answered else None,
    )


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def post_script(request: Request) -> str:
    """wrk's Lua for a POST, counting the 303/200 answers over all threads."""
    headers = "".join(
        f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}\n" for k, v in request.headers.items()
    )
    return f"""wrk.method = {_lua_string(request.method)}
wrk.body = {_lua_string(request.body)}
{headers}local threads = {{}}
function setup(thread) table.insert(threads, thread) end
local prepared
function init(args) answered = 0; sent = 0; prepared = wrk.format() end
function request() sent = sent + 1; return prepared end
function response(status, headers, body)
  if status == 303 or status == 200 then answered = answered + 1 end
end
function done(summary, latency, requests)
  local total, written = 0, 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("answered"); written = written + thread:get("sent")
  end
  io.write(string.format("consentgate-answered %d sent %d\\n", total, written))
end
"""


def run_wrk(base: str, request: Request, seconds: float, workdir: Path) -> Load:
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency"]
    if request.method == "GET":
        for name, value in request.headers.items():
            command += ["-H", f"{name}: {value}"]
    else:
        script = workdir / "post.lua"
        script.write_text(post_script(request))
        command += ["-s", str(script)]
    done = subprocess.run(
        [*command, base + request.path], capture_output=True, text=True, check=False,
        timeout=seconds + 30,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


async def _python_load(base: str, request: Request, seconds: float) -> Load:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    # One client per connection: httpx's shared pool scans every connection on each
    # request, which with 32 of them made the client, not the server, the bottleneck.
    # No cookie jar: every request carries exactly the scenario's cookies, as wrk's do
    # (a decision's cg_consent must not turn the next POST into a change of mind).
    # verify=False: plain HTTP, and loading the CA bundle 32 times takes seconds.
    clients = [
        httpx.AsyncClient(
            base_url=base,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
            timeout=10,
            verify=False,
        )
        for _ in range(CONNECTIONS)
    ]
    content = request.body.encode() or None

    async def worker(client: httpx.AsyncClient, deadline: float) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                response = await client.request(
                    request.method, request.path, headers=request.headers, content=content
                )
            except httpx.HTTPError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - start)
            statuses[response.status_code] += 1

    try:
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(worker(client, deadline) for client in clients))
        elapsed = time.perf_counter() - started
    finally:
        for client in clients:
            await client.aclose()
    if len(latencies) < 2:
        raise SystemExit(f"the Python client got {len(latencies)} answers from {base}")
    cuts = statistics.quantiles(latencies, n=100)
    return Load(
        requests_per_s=len(latencies) / elapsed,
        p50_ms=cuts[49] * 1e3,
        p99_ms=cuts[98] * 1e3,
        requests=len(latencies),
        non_2xx_3xx=sum(n for status, n in statuses.items() if not 200 <= status < 400),
        socket_errors=errors,
        answered=statuses[303] + statuses[200],
        sent=len(latencies) + errors,  # the client waits for every answer before it stops
    )


def drive(base: str, request: Request, seconds: float, workdir: Path, use_wrk: bool) -> Load:
    if use_wrk:
        return run_wrk(base, request, seconds, workdir)
    return asyncio.run(_python_load(base, request, seconds))
