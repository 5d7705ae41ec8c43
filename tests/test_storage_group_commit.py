"""Group commit of consent rows: decisions arriving together share one transaction, each
caller still gets its own row id or its own error, and no cookie leaves without a row."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from tests.conftest import client, csrf_token, html_app, make_gate, run

from consentgate.storage.breaker import StorageTimeoutError, request_budget
from consentgate.storage.sql.batching import GroupCommit


class _Recorder:
    """A flush that keeps what it was given; slow enough for others to queue meanwhile."""

    def __init__(self, fail_on: frozenset[int] = frozenset()) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(0.01)
        if self.fail_on & set(items):
            raise ValueError(f"refused {sorted(self.fail_on & set(items))}")
        return [item * 10 for item in items]


def test_group_commit_callers_arriving_together_share_a_flush() -> None:
    recorder = _Recorder()
    group: GroupCommit[int, int] = GroupCommit(recorder, max_batch=8)

    async def scenario() -> list[int]:
        return list(await asyncio.gather(*(group.submit(n) for n in range(20))))

    assert run(scenario()) == [n * 10 for n in range(20)]
    # All 20 arrived before the writer first ran: three flushes of at most 8, in order.
    assert recorder.batches == [list(range(8)), list(range(8, 16)), list(range(16, 20))]


def test_group_commit_lone_caller_flushes_at_once_and_latecomers_queue() -> None:
    recorder = _Recorder()
    group: GroupCommit[int, int] = GroupCommit(recorder)

    async def scenario() -> list[int]:
        first = asyncio.ensure_future(group.submit(0))
        await asyncio.sleep(0.001)  # its flush is under way
        rest = [asyncio.ensure_future(group.submit(n)) for n in range(1, 6)]
        return list(await asyncio.gather(first, *rest))

    assert run(scenario()) == [0, 10, 20, 30, 40, 50]
    assert recorder.batches == [[0], [1, 2, 3, 4, 5]]


def test_group_commit_one_bad_item_fails_only_its_caller() -> None:
    recorder = _Recorder(fail_on=frozenset({7}))
    group: GroupCommit[int, int] = GroupCommit(recorder)

    async def scenario() -> list[int | BaseException]:
        return list(
            await asyncio.gather(*(group.submit(n) for n in range(12)), return_exceptions=True)
        )

    results = run(scenario())
    assert isinstance(results[7], ValueError) and "refused [7]" in str(results[7])
    assert [r for i, r in enumerate(results) if i != 7] == [n * 10 for n in range(12) if n != 7]


def test_group_commit_caller_who_stops_waiting_leaves_the_others_be() -> None:
    recorder = _Recorder()
    group: GroupCommit[int, int] = GroupCommit(recorder)

    async def scenario() -> list[int]:
        first = asyncio.ensure_future(group.submit(0))
        await asyncio.sleep(0)
        waiting = [asyncio.ensure_future(group.submit(n)) for n in range(1, 5)]
        await asyncio.sleep(0)
        waiting[1].cancel()  # a client gone while its row waits for the next flush
        done = await asyncio.gather(first, *waiting, return_exceptions=True)
        return [r for r in done if isinstance(r, int)]

    assert run(scenario()) == [0, 10, 30, 40]
    # Its row was written all the same: safe, since no cookie goes out without one.
    assert [n for batch in recorder.batches for n in batch] == [0, 1, 2, 3, 4]


def test_group_commit_works_again_in_a_new_event_loop() -> None:
    group: GroupCommit[int, int] = GroupCommit(_Recorder())
    assert run(group.submit(1)) == 10
    assert run(group.submit(2)) == 20


# -- through HTTP, on SQLite ---------------------------------------------------------------


def _failing_for_french(path: Path) -> None:
    """A database that refuses rows of French-speaking readers, as a full disk would."""
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TRIGGER refuse_fr BEFORE INSERT ON consent_ledger WHEN NEW.language = 'fr' "
        "BEGIN SELECT RAISE(ABORT, 'refused for the test'); END"
    )
    conn.commit()
    conn.close()


def test_group_commit_concurrent_decisions_each_get_a_row_or_no_cookie(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, languages=["en", "fr"])
    languages = ["fr" if n % 4 == 0 else "en" for n in range(24)]

    async def one(c: httpx.AsyncClient, token: str, language: str) -> httpx.Response:
        return await c.post(
            "/consentgate/consent",
            data={"action": "accept_all", "csrf_token": token, "next": "/"},
            headers={"accept-language": language},
        )

    async def scenario() -> tuple[list[httpx.Response], int]:
        async with client(gate) as c:
            token = await csrf_token(c)
            await gate.ledger.ensure_open()  # the schema exists: add the refusing trigger
            _failing_for_french(tmp_path / "ledger.db")
            responses = await asyncio.gather(*(one(c, token, lang) for lang in languages))
            rows = await gate.ledger.storage.count_consents()
            ids = {
                r.consent_id
                async for r in gate.ledger.storage.iter_consents()  # type: ignore[attr-defined]
            }
        await gate.ledger.close()
        return list(responses), rows if len(ids) == rows else -1

    responses, rows = run(scenario())
    for language, response in zip(languages, responses, strict=True):
        consent_cookies = [v for v in response.headers.get_list("set-cookie") if "cg_consent=" in v]
        if language == "fr":
            assert response.status_code == 503 and not consent_cookies
        else:
            assert response.status_code == 303 and consent_cookies
    assert rows == languages.count("en")


@pytest.mark.parametrize("readers", [1, 40])
def test_group_commit_rows_equal_answered_decisions(tmp_path: Path, readers: int) -> None:
    gate = make_gate(html_app(), tmp_path)

    async def scenario() -> tuple[int, int]:
        async with client(gate) as c:
            token = await csrf_token(c)
            form = {"action": "reject_all", "csrf_token": token, "next": "/"}
            answers = await asyncio.gather(
                *(c.post("/consentgate/consent", data=form) for _ in range(readers))
            )
            rows = await gate.ledger.storage.count_consents()
        await gate.ledger.close()
        return sum(a.status_code == 303 for a in answers), rows

    assert run(scenario()) == (readers, readers)


class _Slow:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.seen: list[int] = []

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.seen.extend(items)
        await asyncio.sleep(self.seconds)
        return list(items)


def test_group_commit_wait_counts_against_the_requests_storage_budget() -> None:
    flush = _Slow(0.5)
    group: GroupCommit[int, int] = GroupCommit(flush)

    async def scenario() -> tuple[float, float]:
        with request_budget(0.1) as budget:
            assert budget is not None
            started = time.monotonic()
            with pytest.raises(StorageTimeoutError, match="not committed within"):
                await group.submit(1)
            waited = time.monotonic() - started
            left = budget.left
        await asyncio.sleep(0.6)  # the row still goes in with its transaction
        return waited, left

    waited, left = run(scenario())
    assert waited < 0.4 and left <= 0
    assert flush.seen == [1]


def test_group_commit_used_up_budget_is_not_queued() -> None:
    flush = _Slow(0.0)
    group: GroupCommit[int, int] = GroupCommit(flush)

    async def scenario() -> None:
        with request_budget(0.1) as budget:
            assert budget is not None
            budget.left = 0
            with pytest.raises(StorageTimeoutError, match="not asked"):
                await group.submit(1)

    run(scenario())
    assert flush.seen == []
