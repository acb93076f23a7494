"""The reader's language: their profile first, then the switcher's cookie, then the browser.

Django's LocaleMiddleware already reads the cookie and ``Accept-Language``; this adds the
signed-in user's own choice on top, and a switcher view that remembers it on the profile.
The profile is read once, at sign-in, into the session; a request reads the session the
authentication middleware has already loaded, so choosing a language costs no query.
Only what people read is translated. The ledger, the evidence bundle and every hash keep
the language-neutral form.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language
from rest_framework.authentication import TokenAuthentication

from fedgov.models import Profile

SUPPORTED = {code for code, _name in settings.LANGUAGES}
SESSION_KEY = "fedgov_language"


def user_language(user) -> str:
    """The language a user chose for themselves, or "" to follow their browser."""
    if not getattr(user, "is_authenticated", False):
        return ""
    profile = Profile.objects.filter(user=user).only("language").first()
    return profile.language if profile and profile.language in SUPPORTED else ""


def remember_on_sign_in(sender, request, user, **kwargs) -> None:
    """``user_logged_in`` receiver: the profile's language goes into the new session."""
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_KEY] = user_language(user)


class UserLanguageMiddleware:
    """Activates a signed-in user's chosen language (after AuthenticationMiddleware)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        chosen = ""
        if getattr(user, "is_authenticated", False) and hasattr(request, "session"):
            chosen = request.session.get(SESSION_KEY, "")
            chosen = chosen if chosen in SUPPORTED else ""
        if chosen:
            translation.activate(chosen)
            request.LANGUAGE_CODE = chosen
        response = self.get_response(request)
        if chosen:
            response.headers.setdefault("Content-Language", chosen)
        return response


class LanguageTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, then the token owner's chosen language.

    A token request carries no session, and DRF authenticates inside the view, after every
    middleware: without this, ``UserLanguageMiddleware`` never sees the user and a client
    whose owner chose Polish reads the API (DRF's own errors, the OpenAPI schema) in
    whatever its ``Accept-Language`` says. Authentication runs before the body is parsed,
    so parse and validation errors are in that language too.
    """

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        chosen = user_language(user)
        if chosen:
            translation.activate(chosen)
        return user, token


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Django's switcher (cookie, safe redirect), plus the choice kept on the profile."""
    response = django_set_language(request)
    code = request.POST.get("language", "")
    if code in SUPPORTED and request.user.is_authenticated:
        Profile.objects.update_or_create(user=request.user, defaults={"language": code})
        request.session[SESSION_KEY] = code
    return response
