"""The DPO dashboard page and its one action, "verify the ledger now"."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views import View

from dashboard import charts, selectors
from dashboard.forms import FilterForm
from dashboard.services import ledger_verification_run
from fedgov import roles
from fedgov.actors import Actor
from opennebula.selectors import zone_breakers

# Operators watch their rounds here too (issue #18: the dashboard must not 403 them).
DASHBOARD_ROLES = (roles.DPO, roles.LEGAL, roles.AUDITOR, roles.OPERATOR)


class _DashboardAccess(LoginRequiredMixin):
    """Login first (the dashboard's own page: DPOs need not be admin staff), then 403 unless
    DPO, Legal, Auditor or Operator."""

    login_url = "dashboard:login"

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponseBase:
        if request.user.is_authenticated and not roles.has_role(request.user, *DASHBOARD_ROLES):
            raise PermissionDenied("the dashboard is for DPO, Legal, Auditor and Operator")
        return super().dispatch(request, *args, **kwargs)


class DashboardView(_DashboardAccess, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        form = FilterForm(request.GET or None)
        if form.is_bound and not form.is_valid():
            return render(
                request, "dashboard/index.html", {"form": form, "invalid": True}, status=400
            )
        filters = form.filters() if form.is_bound else selectors.Filters()
        site = form.cleaned_data.get("site") if form.is_bound else None
        context = {
            "form": form,
            "filters": filters,
            # The site the per-site figures are narrowed to, named where they are shown.
            "site_scope": site.slug if site is not None else "",
            "runs": selectors.runs(filters),
            "timeline": selectors.round_timeline(filters),
            "awaiting": selectors.rounds_awaiting_approval(),
            "failures": selectors.gate_failures(filters),
            "coverage": selectors.consent_coverage(filters),
            # Each run's reported accuracies with their charts (drawn in the template as SVG).
            "accuracy": [
                (acc, charts.accuracy_charts(acc.rows))
                for acc in selectors.reported_accuracy(filters)
            ],
            "health": selectors.ledger_health(),
            "reports": selectors.reports(filters),
            "zones": zone_breakers(),
            "query": request.GET.urlencode(),
        }
        return render(request, "dashboard/index.html", context)


class VerifyLedgerView(_DashboardAccess, View):
    def post(self, request: HttpRequest) -> HttpResponse:
        result = ledger_verification_run(actor=Actor.of(request.user))
        if result.ok:
            messages.success(
                request,
                _(
                    "Ledger verified: %(size)s entries and %(checkpoints)s checkpoints "
                    "recomputed, no problem found."
                )
                % {"size": result.size, "checkpoints": result.checkpoints},
            )
        else:
            messages.error(
                request,
                _("Ledger verification FAILED: first bad sequence number %(seq)s.")
                % {"seq": result.first_bad_seq},
            )
        target = reverse("dashboard:index")
        query = QueryDict(request.POST.get("query", "")).urlencode()
        # Only our own query string travels back; never an arbitrary redirect target.
        return HttpResponseRedirect(f"{target}?{query}#ledger" if query else f"{target}#ledger")
