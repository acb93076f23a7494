"""Write paths for training runs and their DPIAs (Art. 35).

Each service runs in one durable transaction and appends one ledger event. Rounds are
created and moved by the gate and the round state machine, not here.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from audit.services import ledger_append
from fedgov import clock
from fedgov.actors import Actor
from fedgov.errors import InvalidInput, TransitionNotAllowed
from fedgov.validation import (
    Errors,
    check_hash,
    check_text,
    lazy_number,
    one_of,
    unique_or_invalid,
)
from sites.choices import PolicyStatus
from sites.models import Dataset, Purpose, ResidencyPolicy
from sites.regions import is_country
from training.choices import DpiaStatus, DpMechanism, RefusalAction
from training.models import Dpia, TrainingRun
from training.services.handoff import run_policy_problems, run_start_later

Fail = Callable[[str, Any], None]  # a field, and a reason (lazy: read in the reader's language)


def _check_run_facts(
    fail: Fail,
    *,
    name: Any,
    purpose: Any,
    datasets: Any,
    policy: Any,
    aggregator_country: Any,
    num_rounds: Any,
) -> None:
    """The run's own facts, before anything is read from the database."""
    if not isinstance(name, str) or not name.strip():
        fail("name", _("must not be empty"))
    elif len(name) > 200:
        fail("name", format_lazy(_("must be at most {count} characters"), count=lazy_number(200)))
    if not isinstance(purpose, Purpose) or purpose.pk is None:
        fail("purpose", _("must be a registered purpose"))
    if not isinstance(datasets, list | tuple) or not datasets:
        fail("datasets", _("must list at least one dataset"))
    elif not all(isinstance(d, Dataset) and d.pk for d in datasets):
        fail("datasets", _("must be registered datasets"))
    elif len({d.pk for d in datasets}) != len(datasets):
        fail("datasets", _("lists a dataset twice"))
    if not isinstance(policy, ResidencyPolicy) or policy.pk is None:
        fail("policy", _("must be a policy version"))
    if not is_country(aggregator_country):
        fail(
            "aggregator_country",
            format_lazy(
                _("{value!r} is not an ISO 3166-1 alpha-2 country code"), value=aggregator_country
            ),
        )
    if isinstance(num_rounds, bool) or not isinstance(num_rounds, int) or num_rounds < 1:
        fail("num_rounds", _("must be a whole number of at least 1"))


def _check_dp_plan(
    fail: Fail,
    dp_mechanism: Any,
    dp_clipping_norm: Any,
    dp_noise_multiplier: Any,
    dp_target_epsilon: Any,
) -> None:
    """A DP mechanism with its clipping norm and one of noise multiplier or target ε."""
    if dp_mechanism not in DpMechanism.values:
        fail("dp_mechanism", one_of(v for v in DpMechanism.values if v))
    numbers = (
        ("dp_clipping_norm", dp_clipping_norm),
        ("dp_noise_multiplier", dp_noise_multiplier),
        ("dp_target_epsilon", dp_target_epsilon),
    )
    for field_name, value in numbers:
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            fail(field_name, _("must be a positive, finite number or empty"))
    if dp_mechanism == DpMechanism.NONE:
        for field_name, value in numbers:
            if value is not None:
                fail(field_name, _("needs a DP mechanism; with none nothing adds noise"))
    elif dp_mechanism in DpMechanism.values:
        if dp_clipping_norm is None:
            fail(
                "dp_clipping_norm",
                format_lazy(
                    _("the {mechanism} mechanism needs a clipping norm"), mechanism=dp_mechanism
                ),
            )
        if (dp_noise_multiplier is None) == (dp_target_epsilon is None):
            fail("dp_noise_multiplier", _("give a noise multiplier or a target ε, exactly one"))


def _taken(name: str) -> Any:
    return format_lazy(_("a run named {name!r} already exists"), name=name.strip())


def run_create(
    *,
    actor: Actor,
    name: str,
    purpose: Purpose,
    datasets: list[Dataset],
    policy: ResidencyPolicy,
    aggregator_country: str,
    num_rounds: int = 3,
    dp_mechanism: str = DpMechanism.NONE,
    dp_clipping_norm: float | None = None,
    dp_noise_multiplier: float | None = None,
    dp_target_epsilon: float | None = None,
    on_refusal: str = "skip",
    start_on_worker: bool = True,
) -> TrainingRun:
    """Create a run over datasets under one published policy version.

    Whether each dataset may train is the gate's question, round by round; here only
    the run's own facts are checked. Raises ``InvalidInput`` (draft policy, unknown
    country, withdrawn or repeated dataset, taken name, ...). Ledger: ``run.created``.

    Differential privacy: ``dp_mechanism`` with its clipping norm and either a noise
    multiplier or a target ε over ``num_rounds``, from which the noise multiplier is
    derived with Flower's accountant at the policy's δ and neighbouring relation, the
    run's sites being the population (``fedgov_flower.dp.derive_noise_multiplier``).

    With a broker, a worker gates round 1 once the run commits; ``start_on_worker=False``
    is for a caller that drives the rounds itself (``manage.py federate``), which would
    otherwise race that worker: it gates round 1 before the caller has approved the DPIA.
    """
    errors = Errors()
    fail = errors.add

    _check_run_facts(
        fail,
        name=name,
        purpose=purpose,
        datasets=datasets,
        policy=policy,
        aggregator_country=aggregator_country,
        num_rounds=num_rounds,
    )
    _check_dp_plan(fail, dp_mechanism, dp_clipping_norm, dp_noise_multiplier, dp_target_epsilon)
    if on_refusal not in RefusalAction.values:
        fail("on_refusal", one_of(v for v in RefusalAction.values if v))
    errors.raise_if_any()

    with transaction.atomic(durable=True):
        policy = ResidencyPolicy.objects.get(pk=policy.pk)
        if policy.status != PolicyStatus.PUBLISHED:
            fail(
                "policy",
                format_lazy(
                    _("{policy} v{version} is a draft; publish it first"),
                    policy=policy.name,
                    version=policy.version,
                ),
            )
        rows = list(Dataset.objects.filter(pk__in=[d.pk for d in datasets]).order_by("pk"))
        withdrawn = [d.pk for d in rows if d.withdrawn_at is not None]
        if withdrawn:
            fail(
                "datasets",
                format_lazy(
                    _("withdrawn from federation: {ids}"), ids=", ".join(map(str, withdrawn))
                ),
            )
        if TrainingRun.objects.filter(name=name.strip()).exists():
            fail("name", _taken(name))
        # A run that can never pass its policy is refused now, not blocked round by round.
        for problem in run_policy_problems(policy=policy, datasets=rows):
            fail("policy", problem)
        if (
            dp_mechanism != DpMechanism.NONE
            and dp_mechanism in DpMechanism.values
            and policy.privacy_budget_delta is None
        ):
            fail(
                "dp_mechanism",
                format_lazy(
                    _(
                        "policy {policy} v{version} sets no δ: the mechanism's guarantee "
                        "(and the sites' local DP) needs one"
                    ),
                    policy=policy.name,
                    version=policy.version,
                ),
            )
        if dp_target_epsilon is not None and dp_noise_multiplier is None:
            dp_noise_multiplier = _derive_noise_multiplier(
                policy, rows, dp_target_epsilon, num_rounds, fail
            )
        errors.raise_if_any()
        with unique_or_invalid("name", _taken(name)):
            run = TrainingRun.objects.create(
                name=name.strip(),
                purpose=purpose,
                policy=policy,
                aggregator_country=aggregator_country,
                num_rounds=num_rounds,
                dp_mechanism=dp_mechanism,
                dp_clipping_norm=_float_or_none(dp_clipping_norm),
                dp_noise_multiplier=_float_or_none(dp_noise_multiplier),
                dp_target_epsilon=_float_or_none(dp_target_epsilon),
                on_refusal=on_refusal,
                requested_by=actor.user,
                requested_by_name=actor.label,
            )
        run.datasets.set(rows)
        ledger_append(
            event_type="run.created",
            actor=actor,
            subject_type="run",
            subject_id=run.pk,
            payload={
                "run_id": run.pk,
                "purpose": purpose.code,
                "dataset_ids": [d.pk for d in rows],
                "policy_id": policy.pk,
                "policy_version": policy.version,
                "policy_content_hash": policy.content_hash,
                "aggregator_country": aggregator_country,
                "num_rounds": num_rounds,
                "dp_mechanism": run.dp_mechanism,
                "dp_clipping_norm": run.dp_clipping_norm,
                "dp_noise_multiplier": run.dp_noise_multiplier,
                "dp_target_epsilon": run.dp_target_epsilon,
                "on_refusal": on_refusal,
            },
        )
        # A worker gates round 1 once the run is committed (no-op without a broker).
        run_id = run.pk
        if start_on_worker:
            transaction.on_commit(lambda: run_start_later(run_id))
    return run


def _float_or_none(value: float | None) -> float | None:
    return float(value) if value is not None else None


def _derive_noise_multiplier(policy, datasets, target: float, rounds: int, fail) -> float | None:
    """z for ``target`` ε over ``rounds`` by Flower's accountant, or None after ``fail``."""
    from fedgov_flower.dp import AccountingSpec, DpError, derive_noise_multiplier

    if policy.privacy_budget_delta is None:
        fail(
            "dp_target_epsilon",
            format_lazy(
                _("policy {policy} v{version} sets no δ"),
                policy=policy.name,
                version=policy.version,
            ),
        )
        return None
    population = len({d.site_id for d in datasets}) or 1
    try:
        spec = AccountingSpec(
            delta=policy.privacy_budget_delta,
            population_size=population,
            relation=policy.dp_neighbouring_relation,
        )
        return derive_noise_multiplier(spec, target, rounds)
    except DpError as exc:
        fail("dp_target_epsilon", str(exc))
        return None


def dpia_record(*, actor: Actor, run: TrainingRun, reference: str, document_hash: str) -> Dpia:
    """Record (or revise, while not approved) the DPIA document that covers a run.

    A revision returns the DPIA to draft. Raises ``InvalidInput`` (empty reference, bad
    hash), ``TransitionNotAllowed`` (the run's DPIA is already approved).
    Ledger: ``dpia.recorded``.
    """
    errors = Errors()
    check_text(errors, "reference", reference, max_length=200)
    check_hash(errors, "document_hash", document_hash)
    errors.raise_if_any()
    with transaction.atomic(durable=True):
        run = TrainingRun.objects.select_for_update().get(pk=run.pk)
        dpia = Dpia.objects.filter(run=run).first()
        if dpia is not None and dpia.status == DpiaStatus.APPROVED:
            raise TransitionNotAllowed(
                format_lazy(_("the DPIA of run {run} is approved; it cannot change"), run=run.name)
            )
        revised = dpia is not None
        if dpia is None:
            dpia = Dpia(run=run)
        dpia.reference = reference.strip()
        dpia.document_hash = document_hash.lower()
        dpia.status = DpiaStatus.DRAFT
        dpia.save()
        ledger_append(
            event_type="dpia.recorded",
            actor=actor,
            subject_type="dpia",
            subject_id=dpia.pk,
            payload={
                "dpia_id": dpia.pk,
                "run_id": run.pk,
                "document_hash": dpia.document_hash,
                "revised": revised,
            },
        )
    return dpia


def dpia_approve(*, actor: Actor, dpia: Dpia, valid_until: dt.date | str) -> Dpia:
    """Approve a draft DPIA until ``valid_until`` (the last day it covers).

    Four-eyes: a person approves, and not the one who requested the run. A DPIA that
    already expired is a fact a DPO must be able to record (the gate then refuses the
    run, Art. 35); the ledger event flags it ``recorded_late``, and the event itself says
    who recorded it and when.
    Raises ``InvalidInput`` (date missing, system actor, requester),
    ``TransitionNotAllowed`` (not a draft). Ledger: ``dpia.approved``.
    """
    if isinstance(valid_until, str):
        try:
            valid_until = dt.date.fromisoformat(valid_until)
        except ValueError:
            raise InvalidInput({"valid_until": [_("must be a date (YYYY-MM-DD)")]}) from None
    if not isinstance(valid_until, dt.date) or isinstance(valid_until, dt.datetime):
        raise InvalidInput({"valid_until": [_("must be a date (YYYY-MM-DD)")]})
    if actor.user is None:
        raise InvalidInput(
            {"non_field_errors": [_("a DPIA is approved by a person, not a process")]}
        )
    with transaction.atomic(durable=True):
        dpia = Dpia.objects.select_for_update().select_related("run").get(pk=dpia.pk)
        if dpia.status != DpiaStatus.DRAFT:
            raise TransitionNotAllowed(
                format_lazy(
                    _("DPIA {reference} is {status}, not a draft"),
                    reference=dpia.reference,
                    status=dpia.status,
                )
            )
        if dpia.run.requested_by_id is not None and dpia.run.requested_by_id == actor.user_id:
            raise InvalidInput(
                {
                    "non_field_errors": [
                        _("the run's requester may not approve its DPIA (four-eyes)")
                    ]
                }
            )
        dpia.status = DpiaStatus.APPROVED
        dpia.approved_by = actor.user
        dpia.approved_by_name = actor.label
        dpia.approved_at = clock.now()
        dpia.valid_until = valid_until
        dpia.save()
        ledger_append(
            event_type="dpia.approved",
            actor=actor,
            subject_type="dpia",
            subject_id=dpia.pk,
            payload={
                "dpia_id": dpia.pk,
                "run_id": dpia.run_id,
                "document_hash": dpia.document_hash,
                "valid_until": valid_until.isoformat(),
                # The gate reads valid_until as the last day covered (training.gate.rules).
                "recorded_late": ["valid_until"] if valid_until < dpia.approved_at.date() else [],
            },
        )
    return dpia
