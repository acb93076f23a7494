"""``manage.py ledger_verify``: recompute the whole ledger and check every checkpoint."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from audit import timestamping, trust
from audit import witnessing as witness_checks
from audit.integrity import Report, verify_ledger

# Below this many entries the check takes well under a second; a bar would only flicker.
PROGRESS_FROM = 50_000


class ProgressBar:
    """A one-line bar on the command's stderr, redrawn at most ten times a second."""

    def __init__(self, stream: OutputWrapper, width: int = 40) -> None:
        self.stream = stream
        self.width = width
        self.started = time.monotonic()
        self.drawn = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.drawn < 0.1:
            return
        self.drawn = now
        filled = self.width * done // max(total, 1)
        rate = done / max(now - self.started, 1e-9)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} entries "
            f"({100 * done // max(total, 1)}%, {rate:,.0f}/s)",
            ending="\n" if done >= total else "",
        )
        self.stream.flush()


class Command(BaseCommand):
    help = (
        "Recompute every leaf from its row, rebuild the Merkle tree, check every stored "
        "subtree hash, every checkpoint signature and the consistency between checkpoints. "
        "Exits 1 naming the first bad sequence number."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        bar = parser.add_mutually_exclusive_group()
        bar.add_argument("--progress", action="store_true", help="always show the progress bar")
        bar.add_argument("--no-progress", action="store_true", help="never show it")
        parser.add_argument(
            "--witness-state",
            action="append",
            default=[],
            help="a witness's state file: fail if the ledger is behind or differs from what "
            "that witness saw (a rollback)",
        )
        parser.add_argument(
            "--no-ask-witnesses",
            action="store_true",
            help="do not ask the witnesses of FEDGOV_WITNESSES which size they cosigned "
            "(by default each is asked, and one above the ledger's size fails: a rollback)",
        )
        parser.add_argument(
            "--witnesses-required",
            type=int,
            default=0,
            metavar="K",
            help="fail unless at least K witnesses answer (default 0: a witness that is "
            "down is reported, not a failure)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        trusted = trust.public_keys()
        bar = ProgressBar(self.stderr)
        # None until the first call, which knows the total and so whether to draw at all.
        state: dict[str, ProgressBar | bool | None] = {"bar": None}

        def progress(done: int, total: int) -> None:
            if state["bar"] is None:
                wanted = options["progress"] or (
                    not options["no_progress"] and total >= PROGRESS_FROM
                )
                state["bar"] = bar if wanted else False
            if state["bar"]:
                bar(done, total)

        report = verify_ledger(
            keys=trusted,
            origin=settings.FEDGOV_LEDGER_ORIGIN,
            progress=progress,
            windows=trust.windows(),
        )
        rollback = self._ask_witnesses(report.size, options)
        self._fail_on_problems(report, options["witness_state"], rollback)
        self.stdout.write(
            f"OK: {report.size} entries, {report.checkpoints} checkpoints verified "
            f"against {len(trusted)} trusted key(s)"
        )
        if settings.FEDGOV_WITNESS_QUORUM:
            covered, _root = witness_checks.witnessed_size()
            self.stdout.write(
                f"witnessed: the newest checkpoint with {settings.FEDGOV_WITNESS_QUORUM} valid "
                f"cosignatures is at size {covered}"
            )
        self.stdout.write(timestamping.summary())
        if report.redacted:
            self.stdout.write(
                f"{report.redacted} entries had their contents removed under retention; "
                "their leaf hashes were checked in the tree"
            )

    def _ask_witnesses(self, size: int, options: dict[str, Any]) -> list[str]:
        """Ask each configured witness the size it cosigned; return what that proves.

        A rollback that also deleted the later checkpoints and cosignatures leaves a
        self-consistent ledger: only a witness remembers the larger tree. A witness that
        does not answer is reported here and fails only below ``--witnesses-required``.
        """
        required = options["witnesses_required"]
        if options["no_ask_witnesses"]:
            if required:
                raise CommandError("--witnesses-required needs the witnesses to be asked")
            return []
        asked, held = witness_checks.witness_sizes()
        for answer in held:
            kind = "witness" if answer.size is not None else "WARN witness"
            self.stderr.write(f"{kind} {answer.name}: {answer.detail}")
        answered = [answer for answer in held if answer.size is not None]
        found = witness_checks.rollback_problems(size, held, asked)
        if len(answered) < required:
            silent = "; ".join(f"{a.name}: {a.detail}" for a in held if a.size is None)
            found.append(
                f"only {len(answered)} of {len(settings.FEDGOV_WITNESSES)} witnesses answered "
                f"the size they cosigned, {required} required ({silent or 'none configured'})"
            )
        if held:
            self.stdout.write(
                f"asked {len(held)} witness(es) with the checkpoint at size {asked}: "
                f"{len(answered)} answered"
            )
        return found

    def _fail_on_problems(
        self, report: Report, witness_states: list[str], rollback: list[str]
    ) -> None:
        """Print every problem on stderr and fail with the first that counts: witnesses,
        then trusted time, then the trust list, each only on an otherwise sound ledger;
        the ledger's own first bad seq outranks them all."""
        listed = trust.list_problems()
        witnessed = witness_checks.problems(report.size, witness_states) + rollback
        for problem in witnessed:
            self.stderr.write(f"FAIL witnesses: {problem}")
        if report.ok and not listed and witnessed:
            raise CommandError(f"ledger verification failed; {witnessed[0]}")
        stamped = timestamping.problems()
        for problem in stamped:
            self.stderr.write(f"FAIL trusted time: {problem}")
        if report.ok and not listed and not witnessed and stamped:
            raise CommandError(f"ledger verification failed; {stamped[0]}")
        for problem in listed:
            self.stderr.write(f"FAIL trusted keys: {problem}")
        if report.ok and listed:
            raise CommandError(f"ledger verification failed; trusted keys: {listed[0]}")
        if not report.ok:
            first = report.problems[0]
            for bad in report.problems:
                self.stderr.write(f"FAIL {bad}")
            raise CommandError(
                f"ledger verification failed; first bad seq {first.seq}: {first.message}"
            )
