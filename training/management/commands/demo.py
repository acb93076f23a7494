"""manage.py demo: the governed federation on virt8ra (``--gate-only``: the gate per round)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from rich.table import Table

from audit.models import LedgerEntry
from fedgov import roles
from fedgov.errors import FedgovError
from sites.choices import role_label
from training import selectors
from training.gate.rules import ARTICLES, RULE_IDS
from training.management.output import RichOutput, scenario_person, subjects_word
from training.scenario import (
    ScenarioError,
    apply_round_events,
    load_scenario,
    parse_scenario,
)
from training.services.gate import round_gate

DEFAULT_SCENARIO = Path(settings.BASE_DIR) / "scenarios" / "virt8ra.toml"
# The scripted people of the demo: a DPO keeps the records, an operator runs the
# federation, and a second DPO approves the DPIA (four-eyes: not the run's requester).
PEOPLE = (
    ("demo-dpo", roles.DPO),
    ("demo-operator", roles.OPERATOR),
    ("demo-dpo-approver", roles.DPO),
)


class Command(RichOutput, BaseCommand):
    help = (
        "Run the governed federation of a scenario end to end (manage.py federate); with "
        "--gate-only, load it and run the GDPR gate for each of its rounds, printing a "
        "per-site, per-rule decision table. Re-runnable: existing records are reused and "
        "the run gets the next free name."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--scenario",
            type=Path,
            default=DEFAULT_SCENARIO,
            help=f"scenario TOML file (default: {DEFAULT_SCENARIO.relative_to(settings.BASE_DIR)})",
        )
        parser.add_argument("--width", type=int, default=110, help="table width in columns")
        parser.add_argument(
            "--gate-only",
            action="store_true",
            help="only load the scenario and run the GDPR gate per round (the issue-2 demo); "
            "without it the demo runs the whole federation (manage.py federate)",
        )
        parser.add_argument("--rounds", type=int, default=0, help="federate: first N rounds")
        parser.add_argument("--ports", default="19000-19099", help="federate: local ports")

    def handle(self, *args, scenario: Path, width: int, **options) -> None:
        if not options["gate_only"]:
            call_command(
                "federate",
                scenario=scenario,
                rounds=options["rounds"],
                ports=options["ports"],
                width=width,
                stdout=self.stdout,
                stderr=self.stderr,
            )
            return
        self.console_width = width
        try:
            spec = parse_scenario(scenario)
        except ScenarioError as exc:
            raise CommandError(f"bad scenario {scenario}: {exc}") from None

        dpo, operator, approver = (scenario_person(name, role) for name, role in PEOPLE)
        self._say(f"[bold]fedgov demo[/] · scenario [cyan]{spec.name}[/] ({scenario})")
        try:
            loaded = load_scenario(
                spec,
                dpo=dpo,
                operator=operator,
                approver=approver,
                progress=lambda line: self._say(f"  • {line}"),
            )
        except FedgovError as exc:
            raise CommandError(f"loading the scenario failed: {exc}") from None
        if loaded.reused:
            self._say(
                f"  • reused from an earlier load: {len(loaded.reused)} records "
                f"(the ledger is append-only, so nothing is reset)"
            )

        previous: dict[str, int] = {}
        for round_spec in spec.rounds:
            self._say("")
            self._say(f"[bold]Round {round_spec.number}[/] of run [cyan]{loaded.run.name}[/]")
            try:
                withdrawn = apply_round_events(spec, loaded, round_spec, actor=dpo)
                for slug, count in withdrawn.items():
                    self._say(f"  • {slug}: {count} {subjects_word(count)} withdrew consent")
                decision = round_gate(actor=operator, run=loaded.run, round_no=round_spec.number)
            except FedgovError as exc:
                raise CommandError(f"round {round_spec.number} failed: {exc}") from None
            view = selectors.gate_decision_view(decision)
            self._table(view, previous)
            previous = {e.site_slug: e.eligible_subjects for e in view.eligibilities}

        count = LedgerEntry.objects.count()
        db = settings.DATABASES["default"]
        where = db["NAME"] if db["ENGINE"].endswith("sqlite3") else f"{db['ENGINE']} {db['NAME']}"
        self._say("")
        self._say(
            f"Ledger: {count} events in table audit_ledgerentry of {where}; every gate "
            "decision above is event gate.decided, with its snapshot hash."
        )

    def _table(self, view: selectors.GateDecisionView, previous: dict[str, int]) -> None:
        sites = [e.site_slug for e in view.eligibilities]
        table = Table(title=None, show_lines=False, header_style="bold")
        table.add_column("rule")
        table.add_column("article", style="dim")
        for slug in sites:
            table.add_column(slug, justify="center")
        verdicts = {(r.site_slug, r.rule_id): r for r in view.results}
        for rule_id in RULE_IDS:
            if rule_id == "min-sites":
                continue
            cells = []
            for slug in sites:
                result = verdicts.get((slug, rule_id))
                cells.append("[green]✓[/]" if result and result.ok else "[red]✗[/]")
            table.add_row(rule_id, ARTICLES[rule_id], *cells)
        table.add_section()
        for row in demo_count_rows(view, previous):
            table.add_row(*row)
        self._emit(table)
        self._emit(
            "  ¹ at the round's instant, in consent-based datasets; ² declared records of "
            "datasets under other lawful bases (rows, not people); subjects excluded: consent "
            "withdrawn or expired. A site refused in a round counts once per site and round."
        )
        for r in view.results:
            if not r.ok:
                where = r.site_slug or "round"
                self._say(f"  [red]✗[/] {where} · {r.rule_id} ({r.article}): {r.reason}")
        for r in view.results:
            if r.site_id is None and r.ok:
                self._say(f"  [green]✓[/] round · {r.rule_id} ({r.article}): {r.reason}")
        colour = "green" if view.outcome == "allowed" else "red"
        self._say(f"  Outcome: [bold {colour}]{view.outcome.upper()}[/] — {view.reason}")
        self._say(f"  Snapshot SHA-256: {view.snapshot_hash} · ledger #{view.ledger_seq}")


def _changed(now: int, before: int | None) -> str:
    if before is None or before == now:
        return str(now)
    return f"{now} [yellow](was {before})[/]"


def demo_count_rows(
    view: selectors.GateDecisionView, previous: dict[str, int] | None = None
) -> list[tuple[str, ...]]:
    """The count rows under the demo's rule table, one cell per site: the words and figures
    every other output uses for the same decision (subjects are people, records are rows,
    and "may train" is per site and round)."""
    previous = previous or {}
    sites = view.eligibilities
    return [
        (
            "subjects with valid consent¹",
            "",
            *[_changed(e.eligible_subjects, previous.get(e.site_slug)) for e in sites],
        ),
        ("declared records²", "", *[str(e.declared_records) for e in sites]),
        ("subjects excluded", "", *[str(len(e.excluded_pseudonyms)) for e in sites]),
        ("eligible", "", *["[green]yes[/]" if e.eligible else "[red]no[/]" for e in sites]),
        ("role", "", *[role_label(e.role) for e in sites]),
    ]
