"""Who did something: a person's account, or a named part of fedgov itself."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser, User


@dataclass(frozen=True)
class Actor:
    """The actor every service takes. ``user`` is None for fedgov's own processes.

    ``label`` is the text copy kept beside foreign keys, so evidence survives the account.
    ``second_factor``: the person proved a second factor in this session (django-otp's
    middleware found a confirmed device for it); binding acts require it.
    """

    user: User | None
    label: str
    second_factor: bool = False

    @classmethod
    def of(cls, user: User | AnonymousUser) -> Actor:
        if not user.is_authenticated:
            raise ValueError("an anonymous request cannot act")
        device = getattr(user, "otp_device", None)
        verified = device is not None and device.confirmed and device.user_id == user.pk
        return cls(user=user, label=user.get_username(), second_factor=verified)

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(user=None, label=f"system:{name}")

    @property
    def user_id(self) -> int | None:
        return self.user.pk if self.user is not None else None
