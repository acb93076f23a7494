"""What the demo commands share: rich output to the command's stdout, scenario people."""

from __future__ import annotations

import io

from django.contrib.auth.models import Group, User
from rich.console import Console

from fedgov.actors import Actor


def scenario_person(username: str, role: str) -> Actor:
    """The scenario's named person in ``role``: an account with no usable password."""
    user, created = User.objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    user.groups.add(Group.objects.get(name=role))
    return Actor.of(user)


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
