"""``manage.py createuser NAME --role ROLE``: a staff account for a real person.

The password is random and printed once unless ``--password-stdin`` supplies one; a
site steward needs ``--site SLUG``. Every refusal exits non-zero with its reason.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from fedgov.accounts import HUMAN_ROLES, AccountError, account_create


class Command(BaseCommand):
    help = "Create a staff account holding one fedgov role; prints a random password once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=HUMAN_ROLES)
        parser.add_argument("--site", dest="site_slug", help="the site a steward acts for")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of stdin instead of generating one",
        )

    def handle(self, *args, username, role, site_slug, email, password_stdin, **options):
        password = None
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
            if not password:
                raise CommandError("--password-stdin given but stdin held no password")
        try:
            login = account_create(
                username=username, role=role, password=password, email=email, site_slug=site_slug
            )
        except AccountError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"created {login.username} ({login.role})")
        if not password_stdin:
            self.stdout.write(f"password (shown once): {login.password}")
