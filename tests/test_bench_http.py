"""The end-to-end benchmark's own parsing: wrk's report read right, its Lua well quoted.

The benchmark itself (servers, load) is run by hand, not here: timings are not tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_http
import http_load

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:40123/consentgate/consent
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    54.80ms   12.25ms   1.20s    86.39%
    Req/Sec   543.20    169.25     0.80k    82.00%
  Latency Distribution
     50%  850.00us
     75%   10.28ms
     90%   11.21ms
     99%    1.50s
  2716 requests in 5.00s, 1.09MB read
  Non-2xx or 3xx responses: 3
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:    543.17
Transfer/sec:    223.01KB
consentgate-answered 2713 sent 2749
"""


def test_bench_http_wrk_output_parses_rate_latency_units_and_counts() -> None:
    load = http_load.parse_wrk(WRK_OUTPUT)
    assert load.requests_per_s == pytest.approx(543.17)
    assert load.p50_ms == pytest.approx(0.85)  # µs converted
    assert load.p99_ms == pytest.approx(1500.0)  # seconds converted
    assert load.requests == 2716
    assert load.non_2xx_3xx == 3
    assert load.socket_errors == 3
    assert (load.answered, load.sent) == (2713, 2749)


def test_bench_http_wrk_output_without_script_counts_leaves_them_unset() -> None:
    plain = "\n".join(line for line in WRK_OUTPUT.splitlines() if "consentgate-" not in line)
    load = http_load.parse_wrk(plain)
    assert load.answered is None
    assert load.sent is None


def test_bench_http_wrk_output_missing_latency_aborts() -> None:
    cut = WRK_OUTPUT.replace("     99%    1.50s\n", "")
    with pytest.raises(SystemExit, match="99%"):
        http_load.parse_wrk(cut)


def test_bench_http_post_script_quotes_body_and_headers() -> None:
    request = http_load.Request(
        "/consentgate/consent",
        {"Cookie": 'cg_csrf=a"b\\c'},
        method="POST",
        body="action=accept_all&csrf_token=x.y",
    )
    script = http_load.post_script(request)
    assert 'wrk.method = "POST"' in script
    assert 'wrk.body = "action=accept_all&csrf_token=x.y"' in script
    assert 'wrk.headers["Cookie"] = "cg_csrf=a\\"b\\\\c"' in script
    assert "function response(status, headers, body)" in script


def test_bench_http_worker_split_is_each_workers_part_of_the_cpu_used_in_the_run() -> None:
    # Worker 1 used 0.5 s of the run, worker 2 1.5 s: wrk's connections mostly went to 2.
    assert bench_http._shares([10.0, 4.0], [10.5, 5.5]) == [25.0, 75.0]
    # One worker (no children), a worker replaced mid-run, an idle server: no split.
    assert bench_http._shares([], []) is None
    assert bench_http._shares([1.0, 2.0], [1.5]) is None
    assert bench_http._shares([1.0, 2.0], [1.0, 2.0]) is None


PID_APP = """
import os


def make():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(os.getpid()).encode()})

    return app
"""


@pytest.mark.slow
def test_bench_http_reuse_port_spreads_connections_over_the_workers(tmp_path: Path) -> None:
    # The point of --reuse-port: connections opened at once (as wrk opens them) reach
    # both workers, where uvicorn --workers may give them all to one.
    import subprocess
    import time

    import httpx

    (tmp_path / "pid_app.py").write_text(PID_APP)
    port = bench_http._free_port()
    server = subprocess.Popen(
        [sys.executable, str(Path(bench_http.HERE) / "reuseport_serve.py"), "--workers", "2",
         "--port", str(port), "--app-dir", str(tmp_path), "pid_app:make"],
        start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while True:
            try:
                seen = {httpx.get(url, timeout=1).text}
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the workers did not come up"
                time.sleep(0.1)
        found = bench_http.worker_cpu_seconds(server.pid)
        assert len(found) == 2, "bench_http finds both workers for its CPU split"
        # Until both have listened, a new connection can only reach the first.
        deadline = time.monotonic() + 30
        while len(seen) < 2 and time.monotonic() < deadline:
            clients = [httpx.Client() for _ in range(32)]  # a connection each
            try:
                seen |= {client.get(url).text for client in clients}
            finally:
                for client in clients:
                    client.close()
        assert len(seen) == 2, f"32 connections all reached one worker: {seen}"
        assert server.poll() is None
    finally:
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        server.terminate()
        server.wait(timeout=15)
        # SIGTERM to the supervisor stops its workers too: nothing is left listening.
        assert all(not Path(f"/proc/{child}").exists() for child in children)
