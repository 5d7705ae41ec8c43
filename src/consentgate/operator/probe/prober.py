"""The probe's run: for each article the registered reader, the exhausted reader, then
every reader through every channel, each answer judged."""

from __future__ import annotations

from urllib.parse import urlsplit

from consentgate.operator.probe.channels import CHANNELS, Channel, Target
from consentgate.operator.probe.checks import judge_answer
from consentgate.operator.probe.client import Answer, Client, Jar
from consentgate.operator.probe.decoding import answer_text, decoded_or_raw
from consentgate.operator.probe.errors import (
    ExchangeFailed,
    ProbeError,
    RequestCapReached,
    Undecodable,
)
from consentgate.operator.probe.results import ProbeReport, Reference, Row, State, Verdict
from consentgate.operator.probe.settings import WINDOW, ProbeSettings
from consentgate.operator.probe.signin import sign_in
from consentgate.operator.probe.text import extract_blocks, searchable_text, secret_windows


def _path(value: str, client: Client) -> str:
    if value.startswith(("http://", "https://")):
        parts = urlsplit(value)
        if f"{parts.scheme}://{parts.netloc}" != client.origin:
            raise ProbeError(f"{value} is not on {client.origin}")
        value = parts.path + (f"?{parts.query}" if parts.query else "")
        if client.base_path and value.startswith(client.base_path):
            value = value[len(client.base_path) :]
    if not value.startswith("/"):
        raise ProbeError(f"an article path starts with '/': {value!r}")
    return value


def _tamper(value: str) -> str:
    """The cookie with one signature character changed (one that carries bits: the last
    base64 character may only hold padding)."""
    head, dot, signature = value.rpartition(".")
    text = signature if dot else value
    if len(text) < 2:
        return value + "x"
    index = len(text) // 2
    swapped = "A" if text[index] != "A" else "B"
    changed = text[:index] + swapped + text[index + 1 :]
    return head + dot + changed if dot else changed


class Prober:
    def __init__(self, settings: ProbeSettings) -> None:
        self.settings = settings
        self.client = Client(
            settings.base_url,
            timeout=settings.timeout,
            max_requests=settings.max_requests,
            max_bytes=settings.max_bytes,
        )
        self.report = ProbeReport()

    def run(self) -> ProbeReport:
        client = self.client
        paths = [_path(p, client) for p in self.settings.paths]
        spend = [_path(p, client) for p in self.settings.spend]
        if not paths:
            raise ProbeError("give at least one article path")
        registered = sign_in(client, self.settings)
        for path in paths:
            others = [p for p in dict.fromkeys(paths + spend) if p != path]
            try:
                self._article(path, registered, others)
            except RequestCapReached as exc:
                self._row(path, "-", "-", None, Verdict.ERROR, f"{exc}; stopped (--max-requests)")
                break
        self.report.requests = client.count
        return self.report

    def _row(
        self,
        path: str,
        state: str,
        channel: str,
        answer: Answer | None,
        verdict: Verdict,
        note: str = "",
    ) -> None:
        self.report.rows.append(
            Row(
                path,
                state,
                channel,
                answer.status if answer else None,
                len(answer.body) if answer else None,
                verdict,
                note,
            )
        )

    def _get(self, path: str, jar: Jar | None, headers: dict[str, str] | None = None) -> Answer:
        return self.client.request("GET", path, headers or {}, jar)

    def _article(self, path: str, registered: Jar, others: list[str]) -> None:
        limit = self.client.max_bytes
        try:
            full = self._get(path, registered.copy())
        except ExchangeFailed as exc:
            self._row(path, "registered", "GET", None, Verdict.ERROR, str(exc))
            return
        if full.status != 200:
            self._row(path, "registered", "GET", full, Verdict.ERROR, "not 200: not checked")
            return
        try:
            reference_text = answer_text(full, limit)
        except Undecodable as exc:
            self._row(path, "registered", "GET", full, Verdict.UNCHECKED, str(exc))
            return
        blocks = [b for b in extract_blocks(reference_text) if len(b) >= WINDOW]

        # The exhausted reader: every other article first, then this one.
        spent = Jar()
        early_meter: str | None = None
        for other in others:
            try:
                self._get(other, spent)
            except ExchangeFailed:
                continue  # a spending read that fails only spends less
            if early_meter is None:
                early_meter = spent.cookies.get(self.settings.meter_cookie)
        try:
            cut = self._get(path, spent)
        except ExchangeFailed as exc:
            self._row(path, State.EXHAUSTED, "GET", None, Verdict.ERROR, str(exc))
            return
        try:
            public = searchable_text(answer_text(cut, limit))
        except Undecodable as exc:
            self._row(path, State.EXHAUSTED, "GET", cut, Verdict.UNCHECKED, str(exc))
            return
        hidden = [b for b in blocks if b not in public]
        secrets = secret_windows(hidden, public)
        if not secrets:
            spent_note = f"after {len(others)} other articles" if others else "with no reads"
            self._row(
                path,
                State.EXHAUSTED,
                "GET",
                cut,
                Verdict.NOT_WALLED,
                f"an anonymous reader ({spent_note}) got all the registered reader got; a "
                "free article, a meter larger than the reads spent (--spend), or no sign-in",
            )
            return
        reference = Reference(full, secrets, hidden, sum(len(b.encode()) for b in hidden))
        self.report.articles[path] = (len(blocks), len(hidden))
        meter = spent.cookies.get(self.settings.meter_cookie)
        jars: list[tuple[State, Jar | None, Answer | None]] = [(State.EXHAUSTED, spent, cut)]
        if early_meter or meter:
            tampered = spent.copy()
            tampered.cookies[self.settings.meter_cookie] = _tamper(early_meter or meter or "")
            jars.append((State.TAMPERED, tampered, None))
        if spent.cookies:
            jars.append((State.DROPPED, spent.without(self.settings.meter_cookie), None))
        jars.append((State.FRESH, None, None))
        for state, jar, first in jars:
            self._state(path, state, jar, first, reference)

    def _state(
        self, path: str, state: State, jar: Jar | None, first: Answer | None, ref: Reference
    ) -> None:
        frozen = jar.cookies if jar is not None else None

        def fresh_jar() -> Jar | None:
            # Each request starts from the same cookies: the reader stays in its state.
            return Jar(frozen) if frozen is not None else None

        try:
            plain = first or self._get(path, fresh_jar())
        except ExchangeFailed as exc:
            self._row(path, state, "GET", None, Verdict.ERROR, str(exc))
            return
        verdict, note = self.judge(plain, ref, None, None)
        if verdict is Verdict.LEAK and not state.must_be_cut:
            self._row(path, state, "GET", plain, Verdict.FREE_READ, "metered: not judged")
            return
        if verdict is Verdict.LEAK and state is State.TAMPERED:
            note = "a meter cookie with a bad signature gave a free read; " + note
        self._row(path, state, "GET", plain, verdict, note)
        if verdict is not Verdict.OK:
            return  # the channels would only repeat what the plain GET shows
        cut_length = len(decoded_or_raw(plain, self.client.max_bytes))
        target = Target(
            path=path,
            registered_length=len(decoded_or_raw(ref.answer, self.client.max_bytes)),
            cut_length=cut_length,
            etag=ref.answer.header("etag"),
            last_modified=ref.answer.header("last-modified"),
        )
        for channel in CHANNELS:
            try:
                answer = self.client.request(
                    channel.method, channel.path(path), channel.headers(target), fresh_jar()
                )
            except ExchangeFailed as exc:
                self._row(path, state, channel.name, None, Verdict.ERROR, str(exc))
                continue
            verdict, note = self.judge(answer, ref, channel, cut_length)
            self._row(path, state, channel.name, answer, verdict, note)

    def judge(
        self, answer: Answer, ref: Reference, channel: Channel | None, cut_length: int | None
    ) -> tuple[Verdict, str]:
        """This answer's verdict and note (see :func:`.checks.judge_answer`)."""
        return judge_answer(answer, ref, channel, cut_length, self.client.max_bytes)


def run_probe(settings: ProbeSettings) -> ProbeReport:
    """Probe every path; :class:`ProbeError` for problems that stop it before it starts."""
    return Prober(settings).run()
