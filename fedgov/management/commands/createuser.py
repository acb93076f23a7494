"""``manage.py createuser NAME --role ROLE``: a staff account for a real person.

The password is random and printed once unless ``--password-stdin`` supplies one; a
site steward needs ``--site SLUG``. ``--totp`` also gives the account a confirmed TOTP
device and prints its provisioning URI once; without it, a role that approves or signs
is told where to enrol. Every refusal exits non-zero with its reason.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from fedgov.accounts import HUMAN_ROLES, AccountError, account_create
from fedgov.second_factor import ENROL_PATH, ROLES_NEEDING_SECOND_FACTOR


class Command(BaseCommand):
    help = "Create a staff account holding one fedgov role; prints a random password once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=HUMAN_ROLES)
        parser.add_argument("--site", dest="site_slug", help="the site a steward acts for")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--totp",
            action="store_true",
            help="give the account an authenticator now and print its otpauth:// URI once",
        )
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of stdin instead of generating one",
        )

    def handle(self, *args, username, role, site_slug, email, password_stdin, totp, **options):
        password = None
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
            if not password:
                raise CommandError("--password-stdin given but stdin held no password")
        try:
            login = account_create(
                username=username,
                role=role,
                password=password,
                email=email,
                site_slug=site_slug,
                totp=totp,
            )
        except AccountError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"created {login.username} ({login.role})")
        if not password_stdin:
            self.stdout.write(f"password (shown once): {login.password}")
        if login.totp_uri:
            self.stdout.write(f"authenticator URI (shown once): {login.totp_uri}")
            self.stdout.write(f"authenticator secret: {login.totp_secret}")
        elif role in ROLES_NEEDING_SECOND_FACTOR:
            self.stdout.write(
                f"{role} approves or signs only after a second factor: the person signs in "
                f"and enrols an authenticator at {ENROL_PATH}"
            )
