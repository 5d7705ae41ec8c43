"""URL routes of the Northfield Post (consentgate's own routes are served by the middleware)."""

from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home),
    path("articles/<slug:slug>", views.article),
    path("privacy", views.privacy),
    path("api/consent", views.consent_json),
    path("api/pageview", views.pageview),
    path("signup", views.signup),
    path("signin", views.signin),
    path("signout", views.signout),
]
