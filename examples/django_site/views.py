"""The Northfield Post's views: articles, consent in Django code, Django's own accounts.

Django has no ``request.state``. consentgate puts its objects in the ASGI scope's
``state`` dict, and Django's ``ASGIRequest`` keeps the very same scope as
``request.scope``, so a view reads them as ``request.scope["state"]["consent"]`` (see
:func:`consent` and :func:`gate` below). Under WSGI there is no scope: consentgate is
ASGI-only.
"""

from __future__ import annotations

import html
import secrets
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django import forms
from django.contrib.auth import aget_user, alogin, alogout
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.middleware.csrf import get_token
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from consentgate import Consent, SiteAPI
from consentgate.storage import StorageError

from .articles import ARTICLES, BY_SLUG, Article

HERE = Path(__file__).resolve().parent
AD_COOKIE = "post_ad_id"  # marketing
STATS_COOKIE = "post_stats_id"  # analytics
ONE_YEAR = 31_536_000


# -- consentgate from a Django view ------------------------------------------------------
def consent(request: ASGIRequest) -> Consent:
    """The reader's consent, as consentgate decided it for this request."""
    found: Consent = request.scope["state"]["consent"]
    return found


def gate(request: ASGIRequest) -> SiteAPI:
    """consentgate's API for the site (``record_policy_acceptance`` and the like)."""
    found: SiteAPI = request.scope["state"]["consentgate"]
    return found


# -- forms -------------------------------------------------------------------------------
class SignupForm(UserCreationForm):  # type: ignore[type-arg]
    """Django's user creation form plus the privacy policy box: unticked and required."""

    accept_policy = forms.BooleanField(
        required=True,
        label="I have read and accept the privacy policy",
        error_messages={"required": "Please read and accept the privacy policy to register."},
    )


# -- pages -------------------------------------------------------------------------------
async def _page(request: ASGIRequest, title: str, body: str) -> str:
    user = await aget_user(request)
    if user.is_authenticated:
        account = (
            '<form method="post" action="/signout">'
            f"{_csrf_field(request)}<button>Sign out</button></form>"
        )
    else:
        account = '<a href="/signin">Sign in</a> · <a href="/signup">Register</a>'
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} — The Northfield Post</title></head><body>"
        f'<header><a href="/">The Northfield Post</a> <nav>{account}</nav></header>'
        f"<main>{body}</main>"
        '<footer><a href="/privacy">Privacy policy</a></footer></body></html>'
    )


def _csrf_field(request: ASGIRequest) -> str:
    token = html.escape(get_token(request))
    return f'<input type="hidden" name="csrfmiddlewaretoken" value="{token}">'


async def _form_page(
    request: ASGIRequest, title: str, action: str, form: forms.Form, next_url: str
) -> str:
    rendered = await sync_to_async(form.as_p)()
    body = (
        f"<h1>{html.escape(title)}</h1>"
        f'<form method="post" action="{action}">{_csrf_field(request)}{rendered}'
        f'<input type="hidden" name="next" value="{html.escape(next_url)}">'
        f"<button>{html.escape(title)}</button></form>"
    )
    return await _page(request, title, body)


def _next_url(request: ASGIRequest, value: str | None) -> str:
    """Only redirect within the site."""
    if value and url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return value
    return "/"


def _set_ad_cookie(request: ASGIRequest, response: HttpResponse) -> None:
    """Like a careless ad tag: no consent check. consentgate drops it until *marketing*."""
    ad_id = request.COOKIES.get(AD_COOKIE) or secrets.token_hex(16)
    response.set_cookie(AD_COOKIE, ad_id, max_age=ONE_YEAR, httponly=True, samesite="Lax")


# -- views -------------------------------------------------------------------------------
@require_GET
async def home(request: ASGIRequest) -> HttpResponse:
    items = "".join(
        f'<li><a href="/articles/{a.slug}">{html.escape(a.title)}</a> ({a.access})</li>'
        for a in ARTICLES
    )
    response = HttpResponse(await _page(request, "Home", f"<ul>{items}</ul>"))
    _set_ad_cookie(request, response)
    return response


def _article_body(article: Article) -> str:
    paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in article.paragraphs)
    return (
        f"<article><h1>{html.escape(article.title)}</h1>"
        f'<div class="article-body">{paragraphs}</div></article>'
    )


@require_GET
async def article(request: ASGIRequest, slug: str) -> HttpResponse:
    found = BY_SLUG.get(slug)
    if found is None:
        raise Http404("no such article")
    response = HttpResponse(await _page(request, found.title, _article_body(found)))
    # consentgate reads (and removes) these: free | metered | registered.
    response["Consentgate-Access"] = found.access
    response["Consentgate-Article-Id"] = found.slug
    _set_ad_cookie(request, response)
    return response


@require_GET
async def privacy(request: ASGIRequest) -> HttpResponse:
    text = (HERE / "privacy-policy.md").read_text(encoding="utf-8")
    return HttpResponse(await _page(request, "Privacy policy", f"<pre>{html.escape(text)}</pre>"))


@require_GET
async def consent_json(request: ASGIRequest) -> JsonResponse:
    """What the app itself sees of the reader's consent."""
    current = consent(request)
    body: dict[str, Any] = {
        "decided": current.decided,
        "analytics": current.allows("analytics"),
        "marketing": current.allows("marketing"),
    }
    return JsonResponse(body)


@csrf_exempt  # a beacon: it changes nothing but the reader's own analytics id
@require_POST
async def pageview(request: ASGIRequest) -> JsonResponse:
    """Counts a page view with an analytics id — only when the reader allows it."""
    if not consent(request).allows("analytics"):
        return JsonResponse({"counted": False})
    response = JsonResponse({"counted": True})
    stats_id = request.COOKIES.get(STATS_COOKIE) or secrets.token_hex(16)
    # Had we forgotten the check above, consentgate would drop this cookie anyway.
    response.set_cookie(STATS_COOKIE, stats_id, max_age=ONE_YEAR, samesite="Lax")
    return response


@require_http_methods(["GET", "POST"])
async def signup(request: ASGIRequest) -> HttpResponse:
    next_url = _next_url(request, request.POST.get("next") or request.GET.get("next"))
    if request.method == "GET":
        return HttpResponse(
            await _form_page(request, "Register", "/signup", SignupForm(), next_url)
        )
    form = SignupForm(request.POST)
    if not await sync_to_async(form.is_valid)():  # checks the user name in the database
        page = await _form_page(request, "Register", "/signup", form, next_url)
        return HttpResponse(page, status=400)
    user = await sync_to_async(form.save)()
    try:
        # The proof of consent in consentgate's ledger: version, text hash, method "external".
        await gate(request).record_policy_acceptance(request.scope, str(user.pk))
    except StorageError:
        await user.adelete()  # no recorded acceptance, no account
        return HttpResponse(
            await _page(request, "Please try again", "<p>We could not register you.</p>"),
            status=503,
        )
    await alogin(request, user)
    return HttpResponseRedirect(next_url, status=303)


@require_http_methods(["GET", "POST"])
async def signin(request: ASGIRequest) -> HttpResponse:
    next_url = _next_url(request, request.POST.get("next") or request.GET.get("next"))
    if request.method == "GET":
        form = AuthenticationForm(request)
        return HttpResponse(await _form_page(request, "Sign in", "/signin", form, next_url))
    form = AuthenticationForm(request, data=request.POST)
    if not await sync_to_async(form.is_valid)():
        page = await _form_page(request, "Sign in", "/signin", form, next_url)
        return HttpResponse(page, status=400)
    await alogin(request, form.get_user())
    return HttpResponseRedirect(next_url, status=303)


@require_POST
async def signout(request: ASGIRequest) -> HttpResponse:
    await alogout(request)
    return HttpResponseRedirect("/", status=303)
