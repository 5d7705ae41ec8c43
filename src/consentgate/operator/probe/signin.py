"""The registered reader: a session cookie the operator copied, or a sign-in through
the site's own form."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlencode

from consentgate.operator.probe.client import Client, Jar
from consentgate.operator.probe.decoding import answer_text
from consentgate.operator.probe.errors import ProbeError
from consentgate.operator.probe.settings import ProbeSettings


class _LoginForm(HTMLParser):
    def __init__(self, action_suffix: str) -> None:
        super().__init__(convert_charrefs=True)
        self.suffix = action_suffix
        self.inside = False
        self.found = False
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "form" and not self.found:
            action = attributes.get("action", "").split("?")[0]
            self.inside = action.endswith(self.suffix)
            self.found = self.inside
        elif self.inside and tag == "input" and attributes.get("type") == "hidden":
            self.fields.update(
                {attributes["name"]: attributes.get("value", "")} if attributes.get("name") else {}
            )

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False


def sign_in(client: Client, settings: ProbeSettings) -> Jar:
    """A registered reader's cookies: the operator's session cookie, or a sign-in
    through the site's own form (GET for the CSRF cookie and token, then POST)."""
    jar = Jar()
    if settings.session_cookie:
        name, sep, value = settings.session_cookie.partition("=")
        if sep:
            jar.cookies[name.strip()] = value.strip()
        else:
            jar.cookies[settings.session_cookie_name] = settings.session_cookie.strip()
        return jar
    if not settings.email or settings.password is None:
        raise ProbeError("give --email (with a password) or --session-cookie")
    login = f"{settings.prefix}/login"
    page = client.request("GET", login, {}, jar)
    if page.status != 200:
        raise ProbeError(f"GET {login} answered {page.status}, not the sign-in form")
    form = _LoginForm(login)
    form.feed(answer_text(page, client.max_bytes))
    form.close()
    if not form.found:
        raise ProbeError(f"GET {login} has no form posting to {login} (is --prefix right?)")
    fields = {**form.fields, "email": settings.email, "password": settings.password}
    headers = {"content-type": "application/x-www-form-urlencoded", "origin": client.origin}
    answer = client.request("POST", login, headers, jar, body=urlencode(fields).encode())
    if answer.status == 400:
        raise ProbeError(f"the site refused the sign-in of {settings.email} (wrong password?)")
    if answer.status == 429:
        raise ProbeError("the site rate-limits sign-ins from here; try again later")
    if answer.status not in (302, 303):
        raise ProbeError(f"POST {login} answered {answer.status}, not a redirect after sign-in")
    if settings.session_cookie_name not in jar.cookies:
        raise ProbeError(
            f"the sign-in set no {settings.session_cookie_name!r} cookie "
            "(see --session-cookie-name)"
        )
    return jar
