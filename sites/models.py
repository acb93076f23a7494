"""The records a DPO keeps about each participant: sites, datasets, policies, consent."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

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

    slug = models.SlugField(max_length=64, unique=True, verbose_name=_("slug"))
    organisation = models.CharField(max_length=200, verbose_name=_("organisation"))
    country = models.CharField(
        max_length=2, help_text=_("ISO 3166-1 alpha-2 code"), verbose_name=_("country")
    )
    contact_email = models.EmailField(verbose_name=_("contact email"))
    agreement_type = models.CharField(
        max_length=32, choices=AgreementType.choices, verbose_name=_("agreement type")
    )
    agreement_document_hash = models.CharField(
        max_length=64,
        help_text=_("SHA-256 (hex) of the signed Art. 26/28 agreement"),
        verbose_name=_("agreement document hash"),
    )
    agreement_valid_from = models.DateField(verbose_name=_("agreement valid from"))
    agreement_valid_until = models.DateField(verbose_name=_("agreement valid until"))
    compute_country = models.CharField(
        max_length=2,
        help_text=_("Country where the site's OpenNebula zone declares its compute runs"),
        verbose_name=_("compute country"),
    )
    # Who operates the zone decides whether sending data to it is a transfer (EDPB
    # Guidelines 05/2021, criterion 2): the site itself (its own servers, even abroad, are
    # no transfer) or another organisation. Blank means unknown, and the gate denies.
    zone_operator = models.CharField(
        max_length=200,
        blank=True,
        help_text=_("Organisation operating the OpenNebula zone (the site's own name if its own)"),
        verbose_name=_("zone operator"),
    )
    zone_operator_country = models.CharField(
        max_length=2,
        blank=True,
        help_text=_("ISO 3166-1 alpha-2 code of the zone operator"),
        verbose_name=_("zone operator country"),
    )
    zone_operator_role = models.CharField(
        max_length=16,
        choices=PartyRole.choices,
        blank=True,
        help_text=_("The operator's role"),
        verbose_name=_("zone operator role"),
    )
    one_zone_endpoint = models.URLField(
        blank=True,
        help_text=_("XML-RPC endpoint, …:2633/RPC2"),
        verbose_name=_("one zone endpoint"),
    )
    one_zone_id = models.PositiveIntegerField(default=0, verbose_name=_("one zone id"))
    one_credentials_ref = models.CharField(
        max_length=255,
        blank=True,
        help_text=_(
            "Where the zone credentials live: env:VAR_NAME or file:/path, never the secret"
        ),
        verbose_name=_("one credentials ref"),
    )
    one_template_id = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("The SuperNode VM template in the site's zone"),
        verbose_name=_("one template id"),
    )
    supernode_public_key = models.TextField(
        blank=True,
        help_text=_("PEM public key the site's Flower SuperNode authenticates with"),
        verbose_name=_("supernode public key"),
    )
    flower_node_id = models.CharField(
        max_length=32,
        blank=True,
        help_text=_("Node id the SuperLink gave the registered SuperNode"),
        verbose_name=_("flower node id"),
    )
    status = models.CharField(
        max_length=16,
        choices=SiteStatus.choices,
        default=SiteStatus.ACTIVE,
        verbose_name=_("status"),
    )
    status_reason = models.TextField(
        blank=True,
        help_text=_("Why the site was last suspended or re-activated"),
        verbose_name=_("status reason"),
    )
    status_changed_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("status changed at")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("site")
        verbose_name_plural = _("sites")
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
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="steward",
        verbose_name=_("user"),
    )
    site = models.ForeignKey(
        Site, on_delete=models.CASCADE, related_name="stewards", verbose_name=_("site")
    )

    class Meta:
        verbose_name = _("site steward")
        verbose_name_plural = _("site stewards")

    def __str__(self) -> str:
        return f"{self.user} → {self.site.slug}"


class Purpose(models.Model):
    """A named processing purpose (Art. 5(1)(b)); runs and datasets refer to it by code."""

    code = models.SlugField(max_length=64, unique=True, verbose_name=_("code"))
    name = models.CharField(max_length=200, verbose_name=_("name"))
    description = models.TextField(blank=True, verbose_name=_("description"))

    class Meta:
        verbose_name = _("purpose")
        verbose_name_plural = _("purposes")
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Dataset(models.Model):
    """A dataset held at one site, with the legal facts that decide whether it may train.

    ``processing_countries`` lists ISO codes and region names (``EEA``) where the data may
    be processed. ``record_count`` is the declared size for datasets whose basis is not
    consent; consent-based datasets count their subjects with current consent.
    """

    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, related_name="datasets", verbose_name=_("site")
    )
    name = models.CharField(max_length=200, verbose_name=_("name"))
    description = models.TextField(blank=True, verbose_name=_("description"))
    data_categories = models.JSONField(default=list, verbose_name=_("data categories"))
    special_category = models.BooleanField(default=False, verbose_name=_("special category"))
    art9_condition = models.CharField(
        max_length=16,
        choices=Art9Condition.choices,
        blank=True,
        default=Art9Condition.NONE,
        verbose_name=_("art9 condition"),
    )
    lawful_basis = models.CharField(
        max_length=16, choices=LawfulBasis.choices, verbose_name=_("lawful basis")
    )
    # Art. 10: the ground for criminal-conviction data, and the act or law it rests on.
    art10_basis = models.CharField(
        max_length=32,
        choices=Art10Basis.choices,
        blank=True,
        default=Art10Basis.NONE,
        verbose_name=_("art10 basis"),
    )
    art10_reference = models.CharField(
        max_length=300, blank=True, verbose_name=_("art10 reference")
    )
    purposes = models.ManyToManyField(Purpose, related_name="datasets", verbose_name=_("purposes"))
    retention_until = models.DateField(verbose_name=_("retention until"))
    processing_countries = models.JSONField(default=list, verbose_name=_("processing countries"))
    record_count = models.PositiveIntegerField(default=0, verbose_name=_("record count"))
    withdrawn_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=_("The whole dataset was withdrawn from federation"),
        verbose_name=_("withdrawn at"),
    )
    withdrawal_reason = models.TextField(blank=True, verbose_name=_("withdrawal reason"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("dataset")
        verbose_name_plural = _("datasets")
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

    name = models.SlugField(max_length=64, verbose_name=_("name"))
    version = models.PositiveIntegerField(verbose_name=_("version"))
    status = models.CharField(
        max_length=16,
        choices=PolicyStatus.choices,
        default=PolicyStatus.DRAFT,
        verbose_name=_("status"),
    )
    allowed_areas = models.JSONField(
        default=list, help_text=_("ISO codes and region names"), verbose_name=_("allowed areas")
    )
    transfer_mechanisms = models.JSONField(
        default=dict, blank=True, verbose_name=_("transfer mechanisms")
    )
    # The transfer register (Chapter V), see docs/legal-model.md: who operates the
    # aggregator and fedgov's host, the Art. 46/47/49 grounds per (exporter, importer),
    # and the recipients' qualifying facts for scoped adequacy decisions.
    model_updates_personal_data = models.BooleanField(
        default=True,
        help_text=_("The controller's DPIA reading: model updates are personal data"),
        verbose_name=_("model updates personal data"),
    )
    aggregator_operator = models.JSONField(
        default=dict, blank=True, verbose_name=_("aggregator operator")
    )
    host_operator = models.JSONField(default=dict, blank=True, verbose_name=_("host operator"))
    transfer_safeguards = models.JSONField(
        default=list, blank=True, verbose_name=_("transfer safeguards")
    )
    recipient_certifications = models.JSONField(
        default=list, blank=True, verbose_name=_("recipient certifications")
    )
    dpf_listing_max_age_days = models.PositiveIntegerField(
        default=90, verbose_name=_("dpf listing max age days")
    )
    min_eligible_sites = models.PositiveIntegerField(
        default=1, verbose_name=_("min eligible sites")
    )
    min_records_per_site = models.PositiveIntegerField(
        default=1, verbose_name=_("min records per site")
    )
    requires_approval = models.BooleanField(default=True, verbose_name=_("requires approval"))
    approvals_required = models.PositiveIntegerField(
        default=1, verbose_name=_("approvals required")
    )
    requires_controller_dpo_approval = models.BooleanField(
        default=False, verbose_name=_("requires controller dpo approval")
    )
    requires_dpia = models.BooleanField(default=True, verbose_name=_("requires dpia"))
    privacy_budget_epsilon = models.FloatField(
        null=True, blank=True, verbose_name=_("privacy budget epsilon")
    )
    # The δ at which Flower's accountant reports ε, and the neighbouring relation it uses.
    privacy_budget_delta = models.FloatField(
        null=True, blank=True, verbose_name=_("privacy budget delta")
    )
    dp_neighbouring_relation = models.CharField(
        max_length=20,
        choices=NeighbouringRelation.choices,
        default=NeighbouringRelation.ADD_OR_REMOVE_ONE,
        verbose_name=_("dp neighbouring relation"),
    )
    dp_required_mechanism = models.CharField(
        max_length=20,
        choices=RequiredDpMechanism.choices,
        default="",
        blank=True,
        verbose_name=_("dp required mechanism"),
    )
    content_hash = models.CharField(max_length=64, blank=True, verbose_name=_("content hash"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_by_name = models.CharField(max_length=150, verbose_name=_("created by name"))
    published_at = models.DateTimeField(null=True, blank=True, verbose_name=_("published at"))
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("published by"),
    )
    published_by_name = models.CharField(
        max_length=150, blank=True, verbose_name=_("published by name")
    )

    class Meta:
        verbose_name = _("residency policy")
        ordering = ["name", "-version"]
        verbose_name_plural = _("residency policies")
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

    dataset = models.ForeignKey(
        Dataset, on_delete=models.PROTECT, related_name="consents", verbose_name=_("dataset")
    )
    purpose = models.ForeignKey(
        Purpose, on_delete=models.PROTECT, related_name="+", verbose_name=_("purpose")
    )
    subject_pseudonym = models.CharField(max_length=128, verbose_name=_("subject pseudonym"))
    granted_at = models.DateTimeField(verbose_name=_("granted at"))
    expires_at = models.DateTimeField(null=True, blank=True, verbose_name=_("expires at"))
    withdrawn_at = models.DateTimeField(null=True, blank=True, verbose_name=_("withdrawn at"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
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

    dataset_id = models.BigIntegerField(verbose_name=_("dataset id"))
    purpose_id = models.BigIntegerField(verbose_name=_("purpose id"))
    generation = models.BigIntegerField(default=0, verbose_name=_("generation"))
    computed_generation = models.BigIntegerField(default=-1, verbose_name=_("computed generation"))
    valid_from_us = models.BigIntegerField(null=True, verbose_name=_("valid from (µs)"))
    valid_until_us = models.BigIntegerField(null=True, verbose_name=_("valid until (µs)"))
    eligible = models.IntegerField(default=0, verbose_name=_("eligible"))
    total = models.IntegerField(default=0, verbose_name=_("total"))
    withdrawn = models.IntegerField(default=0, verbose_name=_("withdrawn"))
    # The lapsed pseudonyms (JSON array) and the allowed ones (sorted, newline-joined),
    # as ``sites.selectors.ConsentState`` holds them.
    lapsed_json = models.TextField(default="[]", verbose_name=_("lapsed pseudonyms"))
    allowed_text = models.TextField(default="", verbose_name=_("allowed pseudonyms"))

    class Meta:
        verbose_name = _("consent state cache")
        verbose_name_plural = _("consent state caches")
        constraints = [
            models.UniqueConstraint(
                fields=["dataset_id", "purpose_id"], name="consent_state_cache_key"
            ),
        ]

    def __str__(self) -> str:
        return f"consent state of dataset {self.dataset_id}, purpose {self.purpose_id}"


class ConsentEvent(models.Model):
    """One grant or withdrawal as the site reported it; the history behind ``Consent``."""

    dataset = models.ForeignKey(
        Dataset, on_delete=models.PROTECT, related_name="consent_events", verbose_name=_("dataset")
    )
    purpose = models.ForeignKey(
        Purpose, on_delete=models.PROTECT, related_name="+", verbose_name=_("purpose")
    )
    subject_pseudonym = models.CharField(max_length=128, verbose_name=_("subject pseudonym"))
    kind = models.CharField(max_length=16, choices=ConsentEventKind.choices, verbose_name=_("kind"))
    occurred_at = models.DateTimeField(verbose_name=_("occurred at"))
    expires_at = models.DateTimeField(null=True, blank=True, verbose_name=_("expires at"))
    batch_id = models.CharField(max_length=64, verbose_name=_("batch id"))
    recorded_at = models.DateTimeField(auto_now_add=True, verbose_name=_("recorded at"))
    recorded_by_name = models.CharField(max_length=150, verbose_name=_("recorded by name"))

    class Meta:
        verbose_name = _("consent event")
        verbose_name_plural = _("consent events")
        ordering = ["id"]
        indexes = [models.Index(fields=["dataset", "subject_pseudonym"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.subject_pseudonym} @ {self.occurred_at:%Y-%m-%d}"


class AdequacyListVersion(models.Model):
    """A version of the adequacy list (Art. 45) a DPO recorded; the newest one is in force.

    Append-only: a correction is a new version. Without any row, the list shipped in
    ``sites/data/adequacy.json`` is in force.
    """

    version = models.CharField(max_length=64, unique=True, verbose_name=_("version"))
    sha256 = models.CharField(max_length=64, verbose_name=_("sha256"))
    content = models.TextField(verbose_name=_("content"))
    recorded_at = models.DateTimeField(verbose_name=_("recorded at"))
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        related_name="+",
        verbose_name=_("recorded by"),
    )
    recorded_by_name = models.CharField(max_length=150, verbose_name=_("recorded by name"))

    class Meta:
        verbose_name = _("adequacy list version")
        verbose_name_plural = _("adequacy list versions")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"adequacy list {self.version}"
