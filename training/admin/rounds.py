"""Round admin for operators: the gate's evidence, four-eyes approvals, approve/reject/abort.

Rounds move only through ``training.services.rounds``; this admin shows what an operator
needs to decide (latest gate decision per site and rule, eligibility, approvals so far and
what is still missing) and offers the three decisions, each behind a page that asks for a
reason. Nothing else about a round can be added, changed or deleted here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import Promise
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from audit.models import LedgerEntry
from fedgov import clock, roles
from fedgov.actors import Actor
from fedgov.admin_identifiers import IdentifierColumns
from fedgov.admin_titles import InflectedTitles
from fedgov.errors import FedgovError
from sites.choices import role_label
from training.choices import ApprovalDecision, RoundState
from training.models import GateDecision, Round, RoundPrivacy
from training.reasons import reason_text, round_reason_text
from training.selectors import eligible_counts
from training.services.handoff import round_regate
from training.services.rounds import (
    approvals_missing,
    round_abort,
    round_approve,
    round_reject,
)
from training.statemachine import ABORTABLE

logger = logging.getLogger("fedgov.admin.rounds")

# Who may look at rounds, and who may decide on them (the services check again).
VIEW_ROLES = (roles.OPERATOR, roles.DPO, roles.AUDITOR)
DECIDE_ROLES = (roles.OPERATOR, roles.DPO)
ABORT_ROLES = (roles.OPERATOR, roles.DPO)  # as the API allows

STATE_COLOURS = {
    RoundState.BLOCKED: "fail",
    RoundState.REJECTED: "fail",
    RoundState.FAILED: "fail",
    RoundState.ABORTED: "fail",
    RoundState.AWAITING_APPROVAL: "wait",
    RoundState.CLOSED: "ok",
    RoundState.APPROVED: "ok",
}


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=2000,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        help_text=_("Recorded with your name in the round's history and in the audit ledger."),
    )


@dataclass(frozen=True)
class Decision:
    """One of the three operator decisions: its wording, who may take it, which service."""

    name: str
    verb: str | Promise
    title: str | Promise
    title_plural: str | Promise
    allowed_states: frozenset[str]
    roles: tuple[str, ...]
    call: Callable[..., Any]
    button_class: str


DECISIONS = {
    "approve": Decision(
        name="approve",
        verb=_("Approve"),
        title=_("Approve round"),
        title_plural=_("Approve rounds"),
        allowed_states=frozenset({RoundState.AWAITING_APPROVAL}),
        roles=DECIDE_ROLES,
        call=round_approve,
        button_class="ok",
    ),
    "reject": Decision(
        name="reject",
        verb=_("Reject"),
        title=_("Reject round"),
        title_plural=_("Reject rounds"),
        allowed_states=frozenset({RoundState.AWAITING_APPROVAL}),
        roles=DECIDE_ROLES,
        call=round_reject,
        button_class="fail",
    ),
    "abort": Decision(
        name="abort",
        verb=_("Abort"),
        title=_("Abort round"),
        title_plural=_("Abort rounds"),
        allowed_states=ABORTABLE,
        roles=ABORT_ROLES,
        call=round_abort,
        button_class="fail",
    ),
    # A blocked round whose facts changed (consent, DPIA, agreement) is gated again:
    # a new decision, the old one kept (training/services/handoff.py).
    "regate": Decision(
        name="regate",
        verb=_("Re-gate"),
        title=_("Gate blocked round again"),
        title_plural=_("Gate blocked rounds again"),
        allowed_states=frozenset({RoundState.BLOCKED}),
        roles=DECIDE_ROLES,
        call=round_regate,
        button_class="ok",
    ),
}


@admin.register(Round)
class RoundAdmin(InflectedTitles, IdentifierColumns, admin.ModelAdmin):
    identifier_fields = ("number",)
    list_display = [
        "run",
        "number",
        "state_badge",
        "state_reason_short",
        "approval_count",
        "requested_by_name",
        "updated_at",
    ]
    list_display_links = ["run", "number"]
    list_filter = ["state", "run"]
    search_fields = ["run__name", "state_reason", "requested_by_name"]
    list_select_related = ["run"]
    fields = [
        "run",
        "number",
        "state",
        "state_reason_shown",
        "requested_by_name",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields
    actions = ["approve_rounds", "reject_rounds", "abort_rounds"]
    change_form_template = "admin/training/round/change_form.html"

    # -- permissions: read-only, except for the three decisions -----------------------

    def has_view_permission(self, request, obj=None) -> bool:
        return super().has_view_permission(request, obj) or roles.has_role(
            request.user, *VIEW_ROLES
        )

    def has_module_permission(self, request) -> bool:
        return super().has_module_permission(request) or roles.has_role(request.user, *VIEW_ROLES)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_decide_permission(self, request) -> bool:
        return roles.has_role(request.user, *DECIDE_ROLES)

    def has_abort_permission(self, request) -> bool:
        return roles.has_role(request.user, *ABORT_ROLES)

    # -- changelist ---------------------------------------------------------------------

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_approvals=Count("approvals"))

    @admin.display(description=_("state"), ordering="state")
    def state_badge(self, obj: Round) -> str:
        return format_html(
            '<span class="fg-state fg-{}">{}</span>',
            STATE_COLOURS.get(obj.state, "neutral"),
            obj.get_state_display(),
        )

    @admin.display(description=_("state reason"))
    def state_reason_shown(self, obj: Round) -> str:
        """The stored reason in the reader's language (the English text is what search
        and the ledger keep)."""
        return round_reason_text(obj) or "—"

    @admin.display(description=_("reason"))
    def state_reason_short(self, obj: Round) -> str:
        text = round_reason_text(obj) or "—"
        return text if len(text) <= 90 else text[:89] + "…"

    @admin.display(description=_("decisions"), ordering="_approvals")
    def approval_count(self, obj: Round) -> int:
        return obj._approvals  # type: ignore[attr-defined]

    @admin.action(description=_("Approve selected rounds…"), permissions=["decide"])
    def approve_rounds(self, request, queryset: QuerySet[Round]):
        return self._action_with_reason(request, queryset, DECISIONS["approve"])

    @admin.action(description=_("Reject selected rounds…"), permissions=["decide"])
    def reject_rounds(self, request, queryset: QuerySet[Round]):
        return self._action_with_reason(request, queryset, DECISIONS["reject"])

    @admin.action(description=_("Abort selected rounds…"), permissions=["abort"])
    def abort_rounds(self, request, queryset: QuerySet[Round]):
        return self._action_with_reason(request, queryset, DECISIONS["abort"])

    def _action_with_reason(self, request, queryset: QuerySet[Round], decision: Decision):
        """First call shows the reason page; its submit (``apply``) runs the service."""
        form = ReasonForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            for round_ in queryset.select_related("run"):
                self._decide(request, round_, decision, form.cleaned_data["reason"])
            return None
        rounds = list(queryset.select_related("run"))
        context = {
            **self.admin_site.each_context(request),
            "title": decision.title_plural if len(rounds) > 1 else decision.title,
            "opts": self.model._meta,
            "decision": decision,
            "rounds": rounds,
            "rows": [(r, STATE_COLOURS.get(r.state, "neutral")) for r in rounds],
            "form": form,
            "action_name": f"{decision.name}_rounds",
            "selected_ids": [r.pk for r in rounds],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "select_across": request.POST.get("select_across", "0"),
            "not_allowed": [r for r in rounds if r.state not in decision.allowed_states],
            "cancel_url": reverse("admin:training_round_changelist"),
        }
        return TemplateResponse(request, "admin/training/round/decide.html", context)

    def _decide(self, request, round_: Round, decision: Decision, reason: str) -> bool:
        """Call the decision's service; its refusal becomes an admin error message."""
        label = _("%(verb)s %(run)s round %(number)s") % {
            "verb": decision.verb,
            "run": round_.run.name,
            "number": round_.number,
        }
        context = {"round_id": round_.pk, "run_id": round_.run_id, "decision": decision.name}
        try:
            decision.call(actor=Actor.of(request.user), round=round_, reason=reason)
        except FedgovError as exc:
            logger.info("admin %s refused: %s", decision.name, exc, extra=context)
            self.message_user(
                request,
                _("%(action)s: refused — %(reason)s") % {"action": label, "reason": exc},
                messages.ERROR,
            )
            return False
        round_.refresh_from_db()
        logger.info("admin %s done; round is %s", decision.name, round_.state, extra=context)
        self.message_user(
            request,
            _("%(action)s: done; the round is now %(state)s.")
            % {"action": label, "state": round_.get_state_display().lower()},
            messages.SUCCESS,
        )
        return True

    # -- one round: change page and per-round decision pages -----------------------------

    def get_urls(self):
        custom = [
            path(
                "<path:object_id>/decide/<str:decision>/",
                self.admin_site.admin_view(self.decide_view),
                name="training_round_decide",
            ),
        ]
        return custom + super().get_urls()

    def decide_view(self, request: HttpRequest, object_id: str, decision: str):
        if decision not in DECISIONS:
            raise PermissionDenied
        chosen = DECISIONS[decision]
        round_ = get_object_or_404(Round.objects.select_related("run"), pk=object_id)
        if not roles.has_role(request.user, *chosen.roles):
            raise PermissionDenied
        change_url = reverse("admin:training_round_change", args=[round_.pk])
        form = ReasonForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            self._decide(request, round_, chosen, form.cleaned_data["reason"])
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": chosen.title,
            "opts": self.model._meta,
            "original": round_,
            "decision": chosen,
            "rounds": [round_],
            "rows": [(round_, STATE_COLOURS.get(round_.state, "neutral"))],
            "form": form,
            "not_allowed": [round_] if round_.state not in chosen.allowed_states else [],
            "cancel_url": change_url,
        }
        return TemplateResponse(request, "admin/training/round/decide.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        round_ = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if round_ is not None:
            extra.update(round_evidence(round_))
            # Four-eyes: a requester gets no approve/reject button, only the reason why.
            is_requester = request.user.pk in {round_.requested_by_id, round_.run.requested_by_id}
            extra["is_requester"] = is_requester
            extra["decision_buttons"] = [
                {
                    "url": reverse("admin:training_round_decide", args=[round_.pk, d.name]),
                    "verb": d.verb,
                    "css": d.button_class,
                }
                for d in DECISIONS.values()
                if round_.state in d.allowed_states
                and roles.has_role(request.user, *d.roles)
                and not (is_requester and d.name in ("approve", "reject"))
            ]
        return super().change_view(request, object_id, form_url, extra_context=extra)


def round_evidence(round_: Round) -> dict[str, Any]:
    """What an operator reads before deciding: gate, eligibility, approvals, history."""
    now = clock.now()
    policy = round_.run.policy
    decision = (
        GateDecision.objects.filter(round=round_)
        .order_by("-evaluated_at", "-pk")
        .prefetch_related("results", "eligibilities__site")
        .first()
    )
    sites: list[dict[str, Any]] = []
    if decision is not None:
        eligibility = {e.site.slug: e for e in decision.eligibilities.all()}
        counts = eligible_counts(decision.snapshot)
        grouped: dict[str, list] = {}
        for result in decision.results.all():
            grouped.setdefault(result.site_slug, []).append(result)
        for slug in sorted(grouped, key=lambda s: (s != "", s)):
            results = sorted(grouped[slug], key=lambda r: r.position)
            el = eligibility.get(slug)
            sites.append(
                {
                    "slug": slug or _("(whole round)"),
                    "results": results,
                    "failed": sum(1 for r in results if not r.ok),
                    "eligible": el.eligible if el else None,
                    # People and rows apart, in the words of every other output.
                    "subjects": counts.get(el.site_id, (0, 0, ""))[0] if el else None,
                    "records": counts.get(el.site_id, (0, 0, ""))[1] if el else None,
                    "role": role_label(counts.get(el.site_id, (0, 0, ""))[2]) if el else "",
                    "excluded": len(el.excluded_pseudonyms) if el else None,
                }
            )
    requesters = {round_.requested_by_id, round_.run.requested_by_id} - {None}
    approvals = []
    for a in round_.approvals.all():
        if a.approver_id in requesters:
            status = "does not count (requester)"
        elif a.decision == ApprovalDecision.REJECT:
            status = "rejection"
        elif a.expires_at <= now:
            status = "expired"
        else:
            status = "valid"
        approvals.append({"approval": a, "status": status})
    needs_people = policy.requires_approval or policy.requires_controller_dpo_approval
    missing = (
        [reason_text(m["code"], m["params"]) for m in approvals_missing(round_, now)]
        if needs_people and round_.state == RoundState.AWAITING_APPROVAL
        else []
    )
    history = LedgerEntry.objects.filter(subject_type="round", subject_id=str(round_.pk)).order_by(
        "seq"
    )
    return {
        "gate_decision": decision,
        "gate_sites": sites,
        "eligible_subjects_total": sum(s["subjects"] or 0 for s in sites if s["eligible"]),
        "eligible_records_total": sum(s["records"] or 0 for s in sites if s["eligible"]),
        "policy": policy,
        "needs_people": needs_people,
        "approvals": approvals,
        "approvals_missing": missing,
        "ledger_history": list(history[:200]),
        "state_css": STATE_COLOURS.get(round_.state, "neutral"),
        "now": now,
        "privacy": RoundPrivacy.objects.filter(round=round_).first(),
        "run_dp": round_.run,
    }
