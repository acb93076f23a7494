"""``manage.py token create|list|revoke``: API tokens for the ServerApp and for sites.

    manage.py token create --role service          # the Flower ServerApp's token
    manage.py token create --steward de-legal      # a site's token (its allow-lists)
    manage.py token list
    manage.py token revoke USERNAME

The key is printed once. Every action is a ledger event (``fedgov.tokens``).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from fedgov import roles
from fedgov.actors import Actor
from fedgov.errors import InvalidInput
from fedgov.tokens import token_create, token_list, token_revoke


class Command(BaseCommand):
    help = "Mint, list and revoke API tokens (service and site steward); each is a ledger event."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="mint a token for a new machine account")
        who = create.add_mutually_exclusive_group(required=True)
        who.add_argument("--role", choices=["service"], help="the Flower ServerApp's role")
        who.add_argument("--steward", metavar="SITE", help="a token acting for this site")
        create.add_argument("--username", default="", help="the account's name (default: made)")
        sub.add_parser("list", help="every token, by fingerprint")
        revoke = sub.add_parser("revoke", help="delete an account's token")
        revoke.add_argument("username")

    def handle(self, *args, action, **options):
        actor = Actor.system("manage.py token")
        try:
            if action == "create":
                role = roles.SERVICE if options["role"] else roles.SITE_STEWARD
                username, key = token_create(
                    actor=actor,
                    role=role,
                    site_slug=options["steward"] or "",
                    username=options["username"],
                )
                self.stdout.write(f"created {username} ({role})")
                self.stdout.write(f"token (shown once): {key}")
            elif action == "list":
                for t in token_list(actor=actor):
                    site = f" site={t.site}" if t.site else ""
                    self.stdout.write(
                        f"{t.username}\t{t.role}{site}\tsha256:{t.fingerprint}\t{t.created}"
                    )
            else:
                printed = token_revoke(actor=actor, username=options["username"])
                self.stdout.write(f"revoked the token of {options['username']} (sha256:{printed})")
        except InvalidInput as exc:
            raise CommandError(str(exc)) from exc
