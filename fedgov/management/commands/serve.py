"""``manage.py serve`` (``make serve``): gunicorn, a Celery worker and beat, supervised together.

It migrates, collects static files, prints how to log in, then replaces itself with
honcho running the ``Procfile``. honcho starts each process in its own session and, on
Ctrl-C (SIGINT) or SIGTERM, sends SIGTERM to every process group and SIGKILL after a
grace period (honcho/manager.py), so nothing outlives it; when one process dies, honcho
stops the others.

On the embedded default (no ``CELERY_BROKER_URL``) the processes share kombu's
filesystem transport under ``var/broker``: no server to run. With ``DATABASE_URL`` and
``CELERY_BROKER_URL`` set they use PostgreSQL and Redis or RabbitMQ instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from fedgov import roles
from fedgov.accounts import demo_accounts_issue

EMBEDDED_BROKER = "filesystem://"


class Command(BaseCommand):
    help = "Run the web app (gunicorn), a Celery worker and beat together; Ctrl-C stops all."

    def add_arguments(self, parser):
        parser.add_argument(
            "--bind",
            default=os.environ.get("FEDGOV_BIND", "127.0.0.1:8000"),
            help="gunicorn's address (default $FEDGOV_BIND or 127.0.0.1:8000)",
        )
        accounts = parser.add_mutually_exclusive_group()
        accounts.add_argument(
            "--demo-accounts",
            dest="demo_accounts",
            action="store_true",
            default=None,
            help="give the demo's people (one per role) passwords, printed once "
            "(default: only on the embedded SQLite default)",
        )
        accounts.add_argument("--no-demo-accounts", dest="demo_accounts", action="store_false")
        parser.add_argument(
            "--procfile", default=str(Path(settings.BASE_DIR) / "Procfile"), help="Procfile"
        )

    def handle(self, *args, bind, demo_accounts, procfile, **options):
        procfile_path = Path(procfile)
        if not procfile_path.is_file():
            raise CommandError(f"no Procfile at {procfile_path}")
        host, _, port = bind.rpartition(":")
        if not host or not port.isdigit():
            raise CommandError(f"--bind must be HOST:PORT, got {bind!r}")
        if demo_accounts is None:
            demo_accounts = not os.environ.get("DATABASE_URL")

        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)

        url = f"http://{'localhost' if host in ('127.0.0.1', '0.0.0.0') else host}:{port}"
        self._print_logins(url, demo_accounts)

        env = os.environ.copy()
        env.setdefault("CELERY_BROKER_URL", EMBEDDED_BROKER)
        env["FEDGOV_VAR_DIR"] = str(Path(settings.VAR_DIR).resolve())
        env["FEDGOV_BIND"] = bind
        env["PYTHONUNBUFFERED"] = "1"
        # The Procfile names gunicorn and celery; they sit next to this interpreter.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        broker = env["CELERY_BROKER_URL"]
        self.stdout.write(f"broker: {broker.split('@')[-1] if '@' in broker else broker}")
        self.stdout.flush()
        sys.stderr.flush()
        os.chdir(settings.BASE_DIR)
        honcho = [sys.executable, "-m", "honcho", "start", "-f", str(procfile_path)]
        # exec, not a child: Ctrl-C and SIGTERM reach honcho itself, and no extra process
        # is left to outlive it.
        os.execve(sys.executable, honcho, env)  # noqa: S606 - a fixed argv, no shell

    def _print_logins(self, url: str, demo_accounts: bool) -> None:
        self.stdout.write(f"fedgov: admin {url}/admin/  ·  dashboard {url}/dashboard/")
        if not demo_accounts:
            self.stdout.write(
                "Create accounts with: manage.py createuser NAME --role ROLE [--site SLUG] "
                '(roles: DPO, Operator, Legal, Auditor, "Site steward")'
            )
            return
        logins = demo_accounts_issue()
        shown = [login for login in logins if login.password]
        if shown:
            self.stdout.write(
                "Demo accounts (passwords and authenticator secrets are shown this once):"
            )
        for login in logins:
            secret = login.password or "(set earlier; manage.py changepassword to reset)"
            self.stdout.write(f"  {login.role:<13} {login.username:<22} {secret}")
            if login.totp_secret:
                self.stdout.write(f"  {'':<13} {'':<22} TOTP secret {login.totp_secret}")
        if any(login.totp_secret for login in logins):
            self.stdout.write(
                "  Operators, DPOs and legal sign in with a code from an authenticator app: "
                "add the TOTP secret to one (or open /account/two-factor/ to see a QR code "
                "for a new one)."
            )
        if not any(login.role == roles.SITE_STEWARD for login in logins):
            self.stdout.write(
                "  (no site steward: run `make demo` first, or "
                "manage.py createuser NAME --role 'Site steward' --site SLUG)"
            )
