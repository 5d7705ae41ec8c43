"""The dashboard's HTML: the frame of its pages, its sign-in form, its failure page and
the lookups (a consent id's ledger history, an account's rows).

Server-rendered, no JavaScript, styled only by the report's stylesheet (the one the
dashboard's CSP allows). Every interpolated value goes through :func:`_e`
(:func:`consentgate.markup.escape`).
"""

from __future__ import annotations

from consentgate.markup import escape as _e
from consentgate.operator.privacy import (
    CONSENT_NOTE,
    HASH_NOTE,
    METER_NOTE,
    ConsentReport,
    UserReport,
)
from consentgate.operator.report import page
from consentgate.operator.stats import OutboxFigures, describe_age
from consentgate.operator.store import iso
from consentgate.storage import AcceptanceRecord, ConsentRecord
from consentgate.web.errors import Failure

__all__ = [
    "DEFAULT_DAYS",
    "MAX_QUERY",
    "consent_html",
    "dashboard_page",
    "failure_html",
    "login_html",
    "nav_html",
    "outbox_html",
    "user_html",
]

DEFAULT_DAYS = 30
MAX_QUERY = 320

# The heading of a failure's page; the message says the rest.
_FAILURE_TITLES = {
    Failure.BAD_WINDOW: "Window not accepted",
    Failure.STORAGE_UNAVAILABLE: "Storage unavailable",
    Failure.TOO_MANY_ATTEMPTS: "Too many attempts",
    Failure.ADMIN_OFF: "Not found",
    Failure.ADMIN_TOKEN_WRONG: "Sign in",
    Failure.ADMIN_SIGN_IN_REQUIRED: "Sign in",
}


def dashboard_page(site_name: str, title: str, content: str, nav: str = "") -> str:
    """A whole page of the dashboard: who it belongs to, the navigation, the content."""
    body = (
        f"<header><p>{_e(site_name)} · consentgate dashboard (read-only)</p>{nav}</header>"
        f"<main><h1>{_e(title)}</h1>{content}</main>"
    )
    return page(f"{title} — consentgate", body)


def outbox_html(outbox: OutboxFigures) -> str:
    """The outbox now: what waits for the mail server, what failed, what was given up."""
    oldest = (
        f"{describe_age(outbox.oldest_pending_age)} (written {iso(outbox.oldest_pending)})"
        if outbox.oldest_pending is not None
        else "–"
    )
    figures = "".join(
        f"<li>{_e(label)}<strong>{_e(value)}</strong></li>"
        for label, value in (
            ("Waiting", f"{outbox.pending:,}"),
            ("After failed tries", f"{outbox.retrying:,}"),
            ("Given up", f"{outbox.dead:,}"),
            ("Sent", f"{outbox.sent:,}"),
            ("Oldest waiting", oldest),
        )
    )
    note = (
        "Mail waits here until the mail server takes it; nothing is lost while it is down. "
        "Failed tries are retried with growing pauses, up to an hour."
    )
    if outbox.retrying or outbox.dead:
        note += " The log (consentgate.mail) names the reason of each failed try."
    return (
        '<h2 id="outbox">Outgoing mail</h2>'
        f'<ul class="figures">{figures}</ul><p class="note">{_e(note)}</p>'
    )


def nav_html(base: str, csrf_token: str, query: str = "") -> str:
    """Overview, the search box (keeping ``query``) and the sign-out button."""
    return (
        f'<nav aria-label="Dashboard"><a href="{_e(base)}">Overview</a>'
        f'<form class="inline" role="search" method="get" action="{_e(base)}/search">'
        '<label for="q">Consent id or e-mail</label> '
        f'<input type="search" id="q" name="q" value="{_e(query)}" maxlength="{MAX_QUERY}">'
        ' <button type="submit">Search</button></form> '
        f'<form class="inline" method="post" action="{_e(base)}/logout">'
        f'<input type="hidden" name="csrf_token" value="{_e(csrf_token)}">'
        '<button type="submit">Sign out</button></form></nav>'
    )


def login_html(site_name: str, base: str, csrf_token: str, next_url: str, error: str = "") -> str:
    alert = f'<p class="error" role="alert">{_e(error)}</p>' if error else ""
    body = (
        f"<main><h1>{_e(site_name)}: consentgate dashboard</h1>{alert}"
        f'<form method="post" action="{_e(base)}/login">'
        '<p><label for="token">Admin token</label><br>'
        '<input type="password" id="token" name="token" required '
        'autocomplete="current-password" autofocus></p>'
        f'<input type="hidden" name="csrf_token" value="{_e(csrf_token)}">'
        f'<input type="hidden" name="next" value="{_e(next_url)}">'
        '<p><button type="submit">Sign in</button></p></form>'
        '<p class="note">The token is printed by <code>consentgate admin-token</code>; '
        "the configuration holds only its SHA-256.</p></main>"
    )
    return page("Sign in — consentgate", body)


def failure_html(site_name: str, base: str, failure: Failure, message: str, nav: str = "") -> str:
    """A failure in the dashboard's style: what went wrong, and where to go on."""
    content = f'<p class="error" role="alert">{_e(message)}</p>'
    if failure is Failure.BAD_WINDOW:
        content += f'<p><a href="{_e(base)}">Show the last {DEFAULT_DAYS} days</a></p>'
    elif failure in (Failure.ADMIN_TOKEN_WRONG, Failure.ADMIN_SIGN_IN_REQUIRED):
        content += f'<p><a href="{_e(base)}/login">Sign in with the admin token</a></p>'
    title = _FAILURE_TITLES.get(failure, "Request refused")
    return dashboard_page(site_name, title, content, nav)


# -- the lookups ------------------------------------------------------------------------


def _table(caption: str, head: tuple[str, ...], rows: list[list[str]]) -> str:
    ths = "".join(f'<th scope="col">{_e(h)}</th>' for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (
        f"<table><caption>{_e(caption)}</caption><thead><tr>{ths}</tr></thead>"
        f"<tbody>{trs}</tbody></table>"
    )


_CONSENT_HEAD = (
    "recorded (UTC)",
    "action",
    "method",
    "granted",
    "denied",
    "policy",
    "language",
    "region mode",
    "banner text sha256",
    "IP HMAC",
    "user agent",
    "user id",
)


def _consent_row(rec: ConsentRecord) -> list[str]:
    return [
        iso(rec.recorded_at),
        rec.action,
        rec.method,
        " ".join(rec.granted) or "none",
        " ".join(rec.denied) or "none",
        rec.policy_version,
        rec.language,
        rec.region_mode,
        rec.banner_text_sha256,
        rec.ip_hmac or "(none)",
        rec.user_agent or "(none)",
        rec.user_id or "",
    ]


def _acceptance_row(acc: AcceptanceRecord) -> list[str]:
    return [
        iso(acc.recorded_at),
        acc.purpose,
        "granted" if acc.granted else "refused",
        acc.method,
        acc.policy_version,
        acc.policy_sha256,
        acc.ip_hmac or "(none)",
        acc.user_agent or "(none)",
    ]


def consent_html(report: ConsentReport) -> str:
    if not report.history:
        return f"<p>No ledger rows for consent id <code>{_e(report.consent_id)}</code>.</p>"
    return (
        f"<p>{len(report.history)} ledger rows for consent id "
        f"<code>{_e(report.consent_id)}</code>, oldest first. The IP address is not stored: "
        "only an HMAC of it with the site's secret key.</p>"
        + _table("Ledger history", _CONSENT_HEAD, [_consent_row(r) for r in report.history])
    )


def user_html(report: UserReport) -> str:
    user = report.user
    account = _table(
        "Account",
        ("field", "value"),
        [
            ["id", user.id],
            ["e-mail", user.email],
            ["registered (UTC)", iso(user.created_at)],
            ["password", HASH_NOTE],
        ],
    )
    acceptances = _table(
        "Acceptances",
        (
            "recorded (UTC)",
            "purpose",
            "answer",
            "method",
            "policy version",
            "policy text sha256",
            "IP HMAC",
            "user agent",
        ),
        [_acceptance_row(a) for a in report.acceptances],
    )
    consents = _table(
        "Consent rows recorded while signed in",
        ("consent id", *_CONSENT_HEAD),
        [[r.consent_id, *_consent_row(r)] for r in report.consents],
    )
    return (
        account
        + acceptances
        + consents
        + f'<p class="note">{_e(CONSENT_NOTE)}</p>'
        + f"<h2>Meter</h2><p>{_e(METER_NOTE)}</p>"
    )
