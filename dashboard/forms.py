"""The dashboard's filter form: site, run and period, each optional."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from dashboard.selectors import Filters
from sites.models import Site
from training.models import TrainingRun


class FilterForm(forms.Form):
    site = forms.ModelChoiceField(
        queryset=Site.objects.order_by("slug"),
        required=False,
        empty_label=_("All sites"),
        label=_("Site"),
    )
    run = forms.ModelChoiceField(
        queryset=TrainingRun.objects.order_by("name"),
        required=False,
        empty_label=_("All runs"),
        label=_("Run"),
    )
    start = forms.DateField(
        required=False, label=_("From"), widget=forms.DateInput(attrs={"type": "date"})
    )
    end = forms.DateField(
        required=False, label=_("To"), widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            self.add_error("end", _("must be on or after the start date"))
        return data

    def filters(self) -> Filters:
        """The validated filters; the period covers whole days, ``To`` included."""
        data = self.cleaned_data
        zone = timezone.get_current_timezone()

        def at(day) -> datetime | None:
            return datetime.combine(day, time.min, tzinfo=zone) if day else None

        end = data.get("end")
        return Filters(
            site_id=data["site"].pk if data.get("site") else None,
            run_id=data["run"].pk if data.get("run") else None,
            start=at(data.get("start")),
            end=at(end + timedelta(days=1)) if end else None,
        )
