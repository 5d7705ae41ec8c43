"""Every way a request to our routes can fail, with its status and message.

One enum for the consent endpoints, the account pages and the dashboard (reason
constants, as Django's csrf.py has), so that tests can be parametrised over the failures,
JSON clients read a stable ``error`` code, and operators can replace the readers'
response (``ConsentGate(..., failure_response=...)``) without parsing text.
"""

from __future__ import annotations

from enum import Enum


class Failure(Enum):
    CSRF_COOKIE_MISSING = (
        403,
        "The security cookie is missing or invalid; reload the page and try again.",
    )
    CSRF_TOKEN_MISMATCH = (
        403,
        "The form's security token does not match; reload the page and try again.",
    )
    CROSS_ORIGIN = (403, "The request came from another site (its Origin header).")
    BAD_ACTION = (400, "action must be one of accept_all, reject_all, save.")
    UNKNOWN_CATEGORY = (400, "Unknown consent category.")
    REQUIRED_CATEGORY = (400, "Strictly necessary cookies cannot be switched off.")
    BAD_JSON = (400, "The request body is not valid JSON of the documented shape.")
    JSON_TOO_DEEP = (400, "The JSON body is nested too deeply.")
    BAD_FORM = (400, "The form could not be read.")
    UNSUPPORTED_MEDIA_TYPE = (
        415,
        "Send application/x-www-form-urlencoded or application/json.",
    )
    FORM_MEDIA_TYPE = (415, "Send the form as application/x-www-form-urlencoded.")
    BODY_TOO_LARGE = (413, "The request body is too large.")
    NO_CONSENT = (404, "No consent has been recorded for this browser.")
    # The router: a path of ours that does not exist, or a method it does not take.
    NOT_FOUND = (404, "Not found.")
    METHOD_NOT_ALLOWED = (405, "Method not allowed; the Allow header lists those it takes.")
    STORAGE_UNAVAILABLE = (
        503,
        "Your choice could not be recorded, so nothing was turned on. Please try again.",
    )
    # Sign-in, registration and the admin token: the wait is in Retry-After.
    TOO_MANY_ATTEMPTS = (429, "Too many attempts; please wait and try again.")
    # The account pages: a password change refused (the reason is the message).
    PASSWORD_NOT_CHANGED = (400, "The password was not changed.")
    # A link from one of our mails that is expired, used, altered or for something else.
    LINK_INVALID = (400, "This link does not work (any more); ask for a new one.")
    # A change of address to one that has an account already.
    EMAIL_CHANGE_REFUSED = (409, "The e-mail address was not changed.")
    # Deleting an account without the password or the confirmation.
    ACCOUNT_NOT_DELETED = (400, "The account was not deleted.")
    # The dashboard (an operator tool: its messages address the operator).
    ADMIN_TOKEN_WRONG = (401, "Wrong admin token.")
    ADMIN_SIGN_IN_REQUIRED = (401, "Sign in to the dashboard.")
    ADMIN_FORM_REFUSED = (403, "The form had expired or came from another site.")
    ADMIN_OFF = (404, "Not found.")
    BAD_WINDOW = (400, "The time window was not accepted.")

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message

    @property
    def code(self) -> str:
        return self.name.lower()
