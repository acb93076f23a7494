"""What the demo commands share: rich output to the command's stdout, scenario people."""

from __future__ import annotations

import io

from django.contrib.auth.models import Group, User
from rich.console import Console

from fedgov.actors import Actor


def scenario_person(username: str, role: str, *, second_factor: bool = False) -> Actor:
    """The scenario's named person in ``role``: an account with no usable password.

    ``second_factor=True``: the script acts for a person who approves or signs, so it
    proves a second factor the way that person would, with a code from a TOTP device
    (fedgov/second_factor.py). The device is the script's own and is removed once the
    code is checked, so ``make serve`` still hands the person their own authenticator.
    """
    user, created = User.objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    user.groups.add(Group.objects.get(name=role))
    if not second_factor:
        return Actor.of(user)
    from django_otp.oath import TOTP
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from fedgov.second_factor import actor_by_token

    device = TOTPDevice.objects.create(user=user, name="demo script", confirmed=True)
    try:
        app = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
        return actor_by_token(user=user, token=f"{app.token():0{device.digits}d}")
    finally:
        device.delete()


class RichOutput:
    """Mixin for a ``BaseCommand``: renders rich markup and tables at ``console_width``."""

    console_width = 110

    def _say(self, markup: str) -> None:
        # Prose lines are not wrapped: a terminal or a log viewer wraps them better.
        self._emit(markup, soft_wrap=True)

    def _emit(self, renderable, *, soft_wrap: bool = False) -> None:
        buffer = io.StringIO()
        console = Console(
            file=buffer,
            width=self.console_width,
            force_terminal=self.stdout.isatty(),
            highlight=False,
            soft_wrap=soft_wrap,
        )
        console.print(renderable)
        self.stdout.write(buffer.getvalue(), ending="")
        self.stdout.flush()


def subjects_word(count: int) -> str:
    """The noun for ``count`` data subjects in the commands' English output."""
    return "subject" if count == 1 else "subjects"
