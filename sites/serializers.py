"""API shapes for sites, purposes, datasets, policies and consents.

Serializers only check shape and types; every rule lives in ``sites.services``, which
the views call with ``validated_data``. Read and write shapes are separate classes.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from fedgov.api import OutputSerializer
from fedgov.errors import InvalidInput
from fedgov.numbers import number
from fedgov.parsers import read_body
from fedgov.validation import INT32_MAX
from sites.choices import AgreementType, Art9Condition, ConsentEventKind, LawfulBasis
from sites.consent_csv import header_delimiter
from sites.models import Consent, ConsentEvent, Dataset, Purpose, ResidencyPolicy, Site
from sites.services import MAX_CONSENT_BATCH, MAX_DPF_LISTING_AGE_DAYS

# ----------------------------------------------------------------------------- sites


class SiteSerializer(serializers.ModelSerializer):
    # Blank when the site has no OpenNebula zone yet: "" is no URI, so no "uri" format.
    one_zone_endpoint = serializers.CharField(read_only=True)

    class Meta:
        model = Site
        fields = [
            "id",
            "slug",
            "organisation",
            "country",
            "contact_email",
            "agreement_type",
            "agreement_document_hash",
            "agreement_valid_from",
            "agreement_valid_until",
            "compute_country",
            "zone_operator",
            "zone_operator_country",
            "zone_operator_role",
            "one_zone_endpoint",
            "one_zone_id",
            "one_credentials_ref",
            "one_template_id",
            "supernode_public_key",
            "flower_node_id",
            "status",
            "status_reason",
            "status_changed_at",
            "created_at",
        ]
        read_only_fields = fields


class SiteWriteSerializer(serializers.Serializer):
    slug = serializers.CharField(max_length=64)
    organisation = serializers.CharField(max_length=200)
    country = serializers.CharField(max_length=2, min_length=2)
    contact_email = serializers.CharField(max_length=254)
    agreement_type = serializers.ChoiceField(choices=AgreementType.choices)
    agreement_document_hash = serializers.CharField(max_length=64)
    agreement_valid_from = serializers.DateField()
    agreement_valid_until = serializers.DateField()
    compute_country = serializers.CharField(max_length=2, min_length=2)
    one_zone_endpoint = serializers.CharField(max_length=200, required=False, allow_blank=True)
    one_zone_id = serializers.IntegerField(required=False, min_value=0, max_value=INT32_MAX)
    one_credentials_ref = serializers.CharField(max_length=255, required=False, allow_blank=True)
    one_template_id = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=INT32_MAX
    )
    supernode_public_key = serializers.CharField(required=False, allow_blank=True)
    # Who operates the zone (Chapter V); all three or none, checked by the service.
    zone_operator = serializers.CharField(max_length=200, required=False, allow_blank=True)
    zone_operator_country = serializers.CharField(max_length=2, required=False, allow_blank=True)
    zone_operator_role = serializers.CharField(max_length=16, required=False, allow_blank=True)


class SiteUpdateSerializer(SiteWriteSerializer):
    """PATCH shape: any subset of the fields; the slug never changes."""

    slug = None  # type: ignore[assignment]
    flower_node_id = serializers.CharField(max_length=32, required=False, allow_blank=True)


class RecordReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


# -------------------------------------------------------------------------- purposes


class PurposeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Purpose
        fields = ["id", "code", "name", "description"]
        read_only_fields = ["id"]
        # Uniqueness is the service's rule, reported in the same 400 shape.
        extra_kwargs: dict[str, dict[str, Any]] = {"code": {"validators": []}}


# -------------------------------------------------------------------------- datasets


class DatasetSerializer(serializers.ModelSerializer):
    site_slug = serializers.CharField(source="site.slug", read_only=True)
    # What SlugRelatedField(slug_field="code", many=True, read_only=True) builds (DRF's
    # RelatedField.many_init), written out so its type is the field it is.
    purposes = serializers.ManyRelatedField(
        child_relation=serializers.SlugRelatedField(slug_field="code", read_only=True),
        read_only=True,
    )

    class Meta:
        model = Dataset
        fields = [
            "id",
            "site",
            "site_slug",
            "name",
            "description",
            "data_categories",
            "special_category",
            "art9_condition",
            "art10_basis",
            "art10_reference",
            "lawful_basis",
            "purposes",
            "retention_until",
            "processing_countries",
            "record_count",
            "withdrawn_at",
            "withdrawal_reason",
            "created_at",
        ]
        read_only_fields = fields


class DatasetWriteSerializer(serializers.Serializer):
    site = serializers.PrimaryKeyRelatedField(queryset=Site.objects.all())
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True)
    data_categories = serializers.ListField(child=serializers.CharField(max_length=100))
    special_category = serializers.BooleanField(required=False, default=False)
    art9_condition = serializers.ChoiceField(
        choices=Art9Condition.choices, required=False, allow_blank=True, default=""
    )
    lawful_basis = serializers.ChoiceField(choices=LawfulBasis.choices)
    art10_basis = serializers.CharField(max_length=32, required=False, allow_blank=True)
    art10_reference = serializers.CharField(max_length=300, required=False, allow_blank=True)
    purposes = serializers.SlugRelatedField(
        slug_field="code", many=True, queryset=Purpose.objects.all()
    )
    retention_until = serializers.DateField()
    processing_countries = serializers.ListField(child=serializers.CharField(max_length=16))
    record_count = serializers.IntegerField(
        required=False, default=0, min_value=0, max_value=INT32_MAX
    )


class DatasetUpdateSerializer(DatasetWriteSerializer):
    """PATCH shape: any subset of the fields; a dataset never moves to another site."""

    site = None  # type: ignore[assignment]
    special_category = serializers.BooleanField(required=False)
    art9_condition = serializers.ChoiceField(
        choices=Art9Condition.choices, required=False, allow_blank=True
    )
    record_count = serializers.IntegerField(required=False, min_value=0, max_value=INT32_MAX)


# -------------------------------------------------------------------------- policies


class PolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = ResidencyPolicy
        fields = [
            "id",
            "name",
            "version",
            "status",
            "allowed_areas",
            "transfer_mechanisms",
            "min_eligible_sites",
            "min_records_per_site",
            "requires_approval",
            "approvals_required",
            "requires_controller_dpo_approval",
            "requires_dpia",
            "privacy_budget_epsilon",
            "model_updates_personal_data",
            "aggregator_operator",
            "host_operator",
            "transfer_safeguards",
            "recipient_certifications",
            "dpf_listing_max_age_days",
            "privacy_budget_delta",
            "dp_neighbouring_relation",
            "dp_required_mechanism",
            "content_hash",
            "created_at",
            "created_by_name",
            "published_at",
            "published_by_name",
        ]
        read_only_fields = fields


class PolicyChangesSerializer(serializers.Serializer):
    """The rule fields of a policy; every one optional (PATCH, new version)."""

    allowed_areas = serializers.ListField(
        child=serializers.CharField(max_length=16), required=False
    )
    transfer_mechanisms = serializers.DictField(
        child=serializers.CharField(max_length=16), required=False
    )
    min_eligible_sites = serializers.IntegerField(required=False, max_value=INT32_MAX)
    min_records_per_site = serializers.IntegerField(required=False, max_value=INT32_MAX)
    requires_approval = serializers.BooleanField(required=False)
    approvals_required = serializers.IntegerField(required=False, max_value=INT32_MAX)
    requires_controller_dpo_approval = serializers.BooleanField(required=False)
    requires_dpia = serializers.BooleanField(required=False)
    privacy_budget_epsilon = serializers.FloatField(required=False, allow_null=True)
    # The transfer register; its shape is checked field by field in policy_validate, so a
    # 400 names the entry and the reason (``transfer_safeguards[0].tia_reference``).
    model_updates_personal_data = serializers.BooleanField(required=False)
    aggregator_operator = serializers.JSONField(required=False)
    host_operator = serializers.JSONField(required=False)
    transfer_safeguards = serializers.JSONField(required=False)
    recipient_certifications = serializers.JSONField(required=False)
    # Bounded by the service's own limit (sites.services.policies), in the service's words,
    # so the API and the service refuse the same ages with the same field and reason.
    dpf_listing_max_age_days = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_DPF_LISTING_AGE_DAYS,
        error_messages={
            "invalid": _("must be a whole number"),
            "min_value": _("must be at least {min_value}"),
            "max_value": _("must be at most {max_value}"),
            "max_string_length": _("must be a whole number"),
            "null": _("must be a whole number"),
        },
    )
    privacy_budget_delta = serializers.FloatField(required=False, allow_null=True)
    dp_neighbouring_relation = serializers.CharField(max_length=20, required=False)
    dp_required_mechanism = serializers.CharField(max_length=20, required=False, allow_blank=True)


class PolicyCreateSerializer(PolicyChangesSerializer):
    name = serializers.CharField(max_length=64)
    allowed_areas = serializers.ListField(child=serializers.CharField(max_length=16))


# --------------------------------------------------------------------------- consent


class ConsentSerializer(serializers.ModelSerializer):
    purpose: serializers.SlugRelatedField[Purpose] = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )
    site = serializers.IntegerField(source="dataset.site_id", read_only=True)

    class Meta:
        model = Consent
        fields = [
            "id",
            "dataset",
            "site",
            "purpose",
            "subject_pseudonym",
            "granted_at",
            "expires_at",
            "withdrawn_at",
            "updated_at",
        ]
        read_only_fields = fields


class ConsentEventSerializer(serializers.ModelSerializer):
    purpose: serializers.SlugRelatedField[Purpose] = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )

    class Meta:
        model = ConsentEvent
        fields = [
            "id",
            "dataset",
            "purpose",
            "subject_pseudonym",
            "kind",
            "occurred_at",
            "expires_at",
            "batch_id",
            "recorded_at",
            "recorded_by_name",
        ]
        read_only_fields = fields


class ConsentEventInSerializer(serializers.Serializer):
    """One row of an upload (documentation only: rows are checked by the service)."""

    subject_pseudonym = serializers.CharField(max_length=128)
    purpose = serializers.CharField(help_text=_("Purpose code"))
    kind = serializers.ChoiceField(choices=ConsentEventKind.choices)
    occurred_at = serializers.DateTimeField(help_text=_("ISO 8601 with a time zone offset"))
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ConsentBatchResultSerializer(OutputSerializer):
    batch_id = serializers.CharField()
    dataset_id = serializers.IntegerField()
    events = serializers.IntegerField()
    granted = serializers.IntegerField()
    withdrawn = serializers.IntegerField()
    consents_created = serializers.IntegerField()
    consents_updated = serializers.IntegerField()
    digest = serializers.CharField(help_text=_("SHA-256 of the canonical batch (RFC 8785)"))
    ledger_seq = serializers.IntegerField()


CSV_COLUMNS = ("subject_pseudonym", "purpose", "kind", "occurred_at", "expires_at")


class ConsentCsvRows(list):
    """The events of a ``text/csv`` upload, with the file line each came from (header = 1),
    so the service's refusals name the lines a person sees in their spreadsheet."""

    def __init__(self, rows: list[dict[str, Any]], lines: list[int]) -> None:
        super().__init__(rows)
        self.lines = lines


class ConsentCSVParser(BaseParser):
    """``text/csv`` consent uploads: a header row, then one event per line."""

    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        # Size is checked before reading, rows are counted while parsing: an oversized
        # upload is refused without being held in memory or parsed in full.
        raw = read_body(stream, parser_context)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ParseError(gettext("CSV must be UTF-8 encoded")) from exc
        # Comma or semicolon, read off the header as the admin upload does (sites.consent_csv):
        # de/es/fr/pl spreadsheets save CSV with semicolons. A header that fits neither keeps
        # the comma, so the header error below names what is missing.
        lines = text.splitlines()
        delimiter = header_delimiter(lines[0]) if lines else None
        reader = csv.DictReader(io.StringIO(text), delimiter=delimiter or ",")
        try:
            header = reader.fieldnames or []
        except csv.Error as exc:  # a stray carriage return in the header line
            raise ParseError(
                gettext("CSV line {line}: {error}").format(line=number(reader.line_num), error=exc)
            ) from exc
        missing = [c for c in CSV_COLUMNS[:4] if c not in header]
        unknown = [c for c in header if c not in CSV_COLUMNS]
        if missing or unknown:
            # Column names are the file's own words and stay as they must be spelt.
            none = gettext("none")
            raise ParseError(
                gettext(
                    "CSV header must be {columns} (expires_at optional); missing: {missing}, "
                    "unknown: {unknown}"
                ).format(
                    columns=",".join(CSV_COLUMNS),
                    missing=", ".join(missing) or none,
                    unknown=", ".join(unknown) or none,
                )
            )
        try:
            rows = []
            lines = []
            for row in reader:
                if len(rows) == MAX_CONSENT_BATCH:
                    raise InvalidInput(
                        {
                            "events": [
                                gettext("at most {count} events per upload").format(
                                    count=number(MAX_CONSENT_BATCH)
                                )
                            ]
                        }
                    )
                if None in row:
                    raise ParseError(
                        gettext("CSV line {line} has more cells than the header").format(
                            line=number(reader.line_num)
                        )
                    )
                rows.append({k: (v if v != "" else None) for k, v in row.items()})
                # The line the row ends on, as the admin's upload counts (blank lines too).
                lines.append(reader.line_num)
        except csv.Error as exc:
            raise ParseError(
                gettext("CSV line {line}: {error}").format(line=number(reader.line_num), error=exc)
            ) from exc
        return ConsentCsvRows(rows, lines)
