"""Admin for gate decisions: read-only evidence with every site's results rule by rule."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from fedgov.admin_identifiers import IdentifierColumns
from fedgov.admin_titles import InflectedTitles
from sites.choices import role_label
from training.models import GateDecision, GateResult, SiteEligibility
from training.reasons import article_text, decision_text, result_text
from training.selectors import eligible_counts


class _ReadOnly:
    """Evidence is written by ``round_gate`` only; admin can look, never change."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class _PartOfTheDecision:
    """An inline is part of the decision's evidence: whoever may view the decision sees it.
    No role holds a permission on these models of their own, so without this the page
    showed no result and no eligibility to any DPO, Auditor or Operator (superusers only).
    No pseudonym is shown: the eligibility inline shows counts."""

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("training.view_gatedecision")


class GateResultInline(_PartOfTheDecision, _ReadOnly, admin.TabularInline):
    model = GateResult
    verbose_name = _("rule result")
    verbose_name_plural = _("results per site and rule")
    fields = ("site_label", "rule_id", "article_rendered", "verdict", "reason_rendered", "code")
    readonly_fields = fields
    ordering = ("site_slug", "position")
    extra = 0
    can_delete = False

    @admin.display(description=_("site"))
    def site_label(self, obj: GateResult) -> str:
        return obj.site_slug or "(round)"

    @admin.display(description=_("article"))
    def article_rendered(self, obj: GateResult) -> str:
        return article_text(obj.article)

    @admin.display(description=_("verdict"))
    def verdict(self, obj: GateResult) -> str:
        return format_html(
            '<strong style="color:{}">{}</strong>',
            "#1a7f37" if obj.ok else "#cf222e",
            _("✓ pass") if obj.ok else _("✗ fail"),
        )

    @admin.display(description=_("reason"))
    def reason_rendered(self, obj: GateResult) -> str:
        return result_text(obj)


class SiteEligibilityInline(_PartOfTheDecision, _ReadOnly, admin.TabularInline):
    model = SiteEligibility
    verbose_name_plural = _("eligibility per site")
    # The stored ``eligible_records`` adds people (consents) to rows (declared records);
    # like every other output, the page shows the two apart, from the decision's snapshot.
    fields = (
        "site",
        "role",
        "eligible",
        "eligible_subjects",
        "declared_records",
        "excluded_count",
        "exclusion_digest",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def get_queryset(self, request):
        # Each row names its site: one join, not a query per site of the federation.
        return super().get_queryset(request).select_related("site")

    def _counts(self, obj: SiteEligibility) -> tuple[int, int, str]:
        cache = self.__dict__.setdefault("_snapshots", {})
        if obj.decision_id not in cache:
            cache[obj.decision_id] = eligible_counts(obj.decision.snapshot)
        return cache[obj.decision_id].get(obj.site_id, (0, 0, ""))

    @admin.display(description=_("role"))
    def role(self, obj: SiteEligibility) -> str:
        return role_label(self._counts(obj)[2])

    @admin.display(description=_("subjects with valid consent"))
    def eligible_subjects(self, obj: SiteEligibility) -> int:
        return self._counts(obj)[0]

    @admin.display(description=_("declared records (other lawful bases)"))
    def declared_records(self, obj: SiteEligibility) -> int:
        return self._counts(obj)[1]

    @admin.display(description=_("subjects excluded"))
    def excluded_count(self, obj: SiteEligibility) -> int:
        return len(obj.excluded_pseudonyms)


@admin.register(GateDecision)
class GateDecisionAdmin(InflectedTitles, IdentifierColumns, _ReadOnly, admin.ModelAdmin):
    identifier_fields = ("ledger_seq",)
    list_display = ("round", "outcome", "evaluated_at", "eligible_count", "actor_name")
    list_filter = ("outcome", "evaluated_at")
    search_fields = ("round__run__name", "snapshot_hash", "actor_name")
    list_select_related = ("round__run",)
    date_hierarchy = "evaluated_at"
    fields = (
        "round",
        "outcome",
        "reason_rendered",
        "reason_code",
        "evaluated_at",
        "actor_name",
        "snapshot_hash",
        "ledger_seq",
        "eligible_sites",
        "snapshot_pretty",
    )
    readonly_fields = fields
    inlines = (GateResultInline, SiteEligibilityInline)

    @admin.display(description=_("reason"))
    def reason_rendered(self, obj: GateDecision) -> str:
        return decision_text(obj)

    @admin.display(description=_("eligible sites"))
    def eligible_count(self, obj: GateDecision) -> int:
        return len(obj.eligible_sites)

    @admin.display(description=_("snapshot (RFC 8785, shown indented)"))
    def snapshot_pretty(self, obj: GateDecision) -> str:
        return format_html("<pre>{}</pre>", json.dumps(json.loads(obj.snapshot), indent=2))
