"""The records a DPO keeps about each participant: sites, datasets, policies, consent."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from sites.choices import (
    AgreementType,
    Art9Condition,
    Art10Basis,
    ConsentEventKind,
    LawfulBasis,
    NeighbouringRelation,
    PartyRole,
    PolicyStatus,
    RequiredDpMechanism,
    SiteStatus,
)


class Site(models.Model):
    """A federation participant: one organisation, in one country, on one OpenNebula zone.

    OpenNebula credentials are never stored: ``one_credentials_ref`` names an environment
    variable (``env:NAME``) or a secret file (``file:/path``) that holds them.
    """

    slug = models.SlugField(max_length=64, unique=True)
    organisation = models.CharField(max_length=200)
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2 code")
    contact_email = models.EmailField()
    agreement_type = models.CharField(max_length=32, choices=AgreementType.choices)
    agreement_document_hash = models.CharField(
        max_length=64, help_text="SHA-256 (hex) of the signed Art. 26/28 agreement"
    )
    agreement_valid_from = models.DateField()
    agreement_valid_until = models.DateField()
    compute_country = models.CharField(
        max_length=2,
        help_text="Country where the site's OpenNebula zone declares its compute runs",
    )
    # Who operates the zone decides whether sending data to it is a transfer (EDPB
    # Guidelines 05/2021, criterion 2): the site itself (its own servers, even abroad, are
    # no transfer) or another organisation. Blank means unknown, and the gate denies.
    zone_operator = models.CharField(
        max_length=200,
        blank=True,
        help_text="Organisation operating the OpenNebula zone (the site's own name if its own)",
    )
    zone_operator_country = models.CharField(
        max_length=2, blank=True, help_text="ISO 3166-1 alpha-2 code of the zone operator"
    )
    zone_operator_role = models.CharField(
        max_length=16, choices=PartyRole.choices, blank=True, help_text="The operator's role"
    )
    one_zone_endpoint = models.URLField(blank=True, help_text="XML-RPC endpoint, …:2633/RPC2")
    one_zone_id = models.PositiveIntegerField(default=0)
    one_credentials_ref = models.CharField(
        max_length=255,
        blank=True,
        help_text="Where the zone credentials live: env:VAR_NAME or file:/path, never the secret",
    )
    one_template_id = models.PositiveIntegerField(
        null=True, blank=True, help_text="The SuperNode VM template in the site's zone"
    )
    supernode_public_key = models.TextField(
        blank=True, help_text="PEM public key the site's Flower SuperNode authenticates with"
    )
    flower_node_id = models.CharField(
        max_length=32, blank=True, help_text="Node id the SuperLink gave the registered SuperNode"
    )
    status = models.CharField(max_length=16, choices=SiteStatus.choices, default=SiteStatus.ACTIVE)
    status_reason = models.TextField(
        blank=True, help_text="Why the site was last suspended or re-activated"
    )
    status_changed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(agreement_valid_until__gte=models.F("agreement_valid_from")),
                name="site_agreement_window_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.slug} ({self.country})"


class SiteSteward(models.Model):
    """A user who acts for one site: uploads its consents and sees only its data."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="steward"
    )
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="stewards")

    def __str__(self) -> str:
        return f"{self.user} → {self.site.slug}"


class Purpose(models.Model):
    """A named processing purpose (Art. 5(1)(b)); runs and datasets refer to it by code."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Dataset(models.Model):
    """A dataset held at one site, with the legal facts that decide whether it may train.

    ``processing_countries`` lists ISO codes and region names (``EEA``) where the data may
    be processed. ``record_count`` is the declared size for datasets whose basis is not
    consent; consent-based datasets count their subjects with current consent.
    """

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="datasets")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    data_categories = models.JSONField(default=list)
    special_category = models.BooleanField(default=False)
    art9_condition = models.CharField(
        max_length=16, choices=Art9Condition.choices, blank=True, default=Art9Condition.NONE
    )
    lawful_basis = models.CharField(max_length=16, choices=LawfulBasis.choices)
    # Art. 10: the ground for criminal-conviction data, and the act or law it rests on.
    art10_basis = models.CharField(
        max_length=32, choices=Art10Basis.choices, blank=True, default=Art10Basis.NONE
    )
    art10_reference = models.CharField(max_length=300, blank=True)
    purposes = models.ManyToManyField(Purpose, related_name="datasets")
    retention_until = models.DateField()
    processing_countries = models.JSONField(default=list)
    record_count = models.PositiveIntegerField(default=0)
    withdrawn_at = models.DateTimeField(
        null=True, blank=True, help_text="The whole dataset was withdrawn from federation"
    )
    withdrawal_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["site__slug", "name"]
        constraints = [
            models.UniqueConstraint(fields=["site", "name"], name="dataset_unique_name_per_site"),
        ]

    def __str__(self) -> str:
        return f"{self.site.slug}/{self.name}"


class ResidencyPolicy(models.Model):
    """One version of a data-residency and federation policy.

    A published version never changes (services refuse, the admin is read-only, and
    ``content_hash`` would expose a change); editing means publishing version n+1.
    ``transfer_mechanisms`` maps a site slug to the mechanism that covers sending its
    model updates to the aggregator's country (``adequacy``, ``scc``, ``bcr``).
    """

    name = models.SlugField(max_length=64)
    version = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=PolicyStatus.choices, default=PolicyStatus.DRAFT
    )
    allowed_areas = models.JSONField(default=list, help_text="ISO codes and region names")
    transfer_mechanisms = models.JSONField(default=dict, blank=True)
    # The transfer register (Chapter V), see docs/legal-model.md: who operates the
    # aggregator and fedgov's host, the Art. 46/47/49 grounds per (exporter, importer),
    # and the recipients' qualifying facts for scoped adequacy decisions.
    model_updates_personal_data = models.BooleanField(
        default=True, help_text="The controller's DPIA reading: model updates are personal data"
    )
    aggregator_operator = models.JSONField(default=dict, blank=True)
    host_operator = models.JSONField(default=dict, blank=True)
    transfer_safeguards = models.JSONField(default=list, blank=True)
    recipient_certifications = models.JSONField(default=list, blank=True)
    dpf_listing_max_age_days = models.PositiveIntegerField(default=90)
    min_eligible_sites = models.PositiveIntegerField(default=1)
    min_records_per_site = models.PositiveIntegerField(default=1)
    requires_approval = models.BooleanField(default=True)
    approvals_required = models.PositiveIntegerField(default=1)
    requires_controller_dpo_approval = models.BooleanField(default=False)
    requires_dpia = models.BooleanField(default=True)
    privacy_budget_epsilon = models.FloatField(null=True, blank=True)
    # The δ at which Flower's accountant reports ε, and the neighbouring relation it uses.
    privacy_budget_delta = models.FloatField(null=True, blank=True)
    dp_neighbouring_relation = models.CharField(
        max_length=20,
        choices=NeighbouringRelation.choices,
        default=NeighbouringRelation.ADD_OR_REMOVE_ONE,
    )
    dp_required_mechanism = models.CharField(
        max_length=20, choices=RequiredDpMechanism.choices, default="", blank=True
    )
    content_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    created_by_name = models.CharField(max_length=150)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    published_by_name = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["name", "-version"]
        verbose_name_plural = "residency policies"
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="policy_unique_version"),
            models.CheckConstraint(
                condition=Q(status="draft") | Q(published_at__isnull=False),
                name="policy_published_has_time",
            ),
            models.CheckConstraint(
                condition=Q(min_eligible_sites__gte=1), name="policy_min_sites_positive"
            ),
            models.CheckConstraint(
                condition=Q(privacy_budget_epsilon__isnull=True) | Q(privacy_budget_epsilon__gt=0),
                name="policy_budget_positive",
            ),
            models.CheckConstraint(
                condition=Q(privacy_budget_delta__isnull=True)
                | (Q(privacy_budget_delta__gt=0) & Q(privacy_budget_delta__lt=1)),
                name="policy_budget_delta_probability",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version} ({self.status})"


class Consent(models.Model):
    """Current consent of one data subject, for one dataset and purpose.

    The subject appears only as the pseudonym the site computes; fedgov never sees who it
    is. History lives in ``ConsentEvent``; a withdrawal sets ``withdrawn_at`` and never
    deletes the row.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="consents")
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="+")
    subject_pseudonym = models.CharField(max_length=128)
    granted_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dataset_id", "subject_pseudonym"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "purpose", "subject_pseudonym"], name="consent_unique_subject"
            ),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("granted_at")),
                name="consent_expires_after_grant",
            ),
        ]
        indexes = [
            models.Index(fields=["dataset", "purpose"]),
            # Covers the gate's consent read (sites.selectors.consent_states): the rows
            # come in pseudonym order with their dates, without a sort or a table read.
            models.Index(
                fields=[
                    "dataset",
                    "purpose",
                    "subject_pseudonym",
                    "granted_at",
                    "expires_at",
                    "withdrawn_at",
                ],
                name="consent_validity",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dataset} {self.subject_pseudonym}"


class ConsentStateCache(models.Model):
    """One dataset's consent state for one purpose, as the gate last computed it, with the
    span of instants over which that state holds (``sites.services.consent_states_current``).

    Consent state is piecewise constant in time: it changes only at a grant, expiry or
    withdrawal instant, so the state computed at ``at`` holds for every instant in
    ``[valid_from_us, valid_until_us)`` (the latest such instant at or before ``at`` and
    the earliest after it; NULL is unbounded). Any write to ``sites_consent`` (services,
    bulk insert, raw SQL, TRUNCATE on PostgreSQL) bumps ``generation`` and clears the
    cached lists in the same transaction, by the triggers of ``sites.triggers``; a row is
    used only while ``computed_generation == generation``.

    Plain integer keys, no foreign keys: the triggers may create a row while Django
    deletes a dataset, and a row nobody can use (stale generation) is harmless.
    """

    dataset_id = models.BigIntegerField()
    purpose_id = models.BigIntegerField()
    generation = models.BigIntegerField(default=0)
    computed_generation = models.BigIntegerField(default=-1)
    valid_from_us = models.BigIntegerField(null=True)
    valid_until_us = models.BigIntegerField(null=True)
    eligible = models.IntegerField(default=0)
    total = models.IntegerField(default=0)
    withdrawn = models.IntegerField(default=0)
    # The lapsed pseudonyms (JSON array) and the allowed ones (sorted, newline-joined),
    # as ``sites.selectors.ConsentState`` holds them.
    lapsed_json = models.TextField(default="[]")
    allowed_text = models.TextField(default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["dataset_id", "purpose_id"], name="consent_state_cache_key"
            ),
        ]

    def __str__(self) -> str:
        return f"consent state of dataset {self.dataset_id}, purpose {self.purpose_id}"


class ConsentEvent(models.Model):
    """One grant or withdrawal as the site reported it; the history behind ``Consent``."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="consent_events")
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="+")
    subject_pseudonym = models.CharField(max_length=128)
    kind = models.CharField(max_length=16, choices=ConsentEventKind.choices)
    occurred_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    batch_id = models.CharField(max_length=64)
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by_name = models.CharField(max_length=150)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["dataset", "subject_pseudonym"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject_pseudonym} @ {self.occurred_at:%Y-%m-%d}"


class AdequacyListVersion(models.Model):
    """A version of the adequacy list (Art. 45) a DPO recorded; the newest one is in force.

    Append-only: a correction is a new version. Without any row, the list shipped in
    ``sites/data/adequacy.json`` is in force.
    """

    version = models.CharField(max_length=64, unique=True)
    sha256 = models.CharField(max_length=64)
    content = models.TextField()
    recorded_at = models.DateTimeField()
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+"
    )
    recorded_by_name = models.CharField(max_length=150)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"adequacy list {self.version}"
