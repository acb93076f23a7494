"""factory_boy factories: minimal valid objects. Tests state the facts that matter."""

from __future__ import annotations

import datetime as dt
import hashlib

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone

from sites.choices import AgreementType, LawfulBasis, PolicyStatus, SiteStatus
from sites.models import Consent, Dataset, Purpose, ResidencyPolicy, Site
from training.choices import DpiaStatus
from training.models import Dpia, Round, TrainingRun


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests-only")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        for name in extracted or ():
            self.groups.add(Group.objects.get(name=name))


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    slug = factory.Sequence(lambda n: f"site-{n}")
    organisation = factory.LazyAttribute(lambda o: f"Organisation of {o.slug}")
    country = "DE"
    compute_country = factory.LazyAttribute(lambda o: o.country)
    # The site runs its own zone unless a test says otherwise: no transfer for its data.
    zone_operator = factory.LazyAttribute(lambda o: o.organisation)
    zone_operator_country = factory.LazyAttribute(lambda o: o.country)
    zone_operator_role = factory.LazyAttribute(lambda o: o.agreement_type)
    contact_email = factory.LazyAttribute(lambda o: f"dpo@{o.slug}.example")
    agreement_type = AgreementType.JOINT_CONTROLLER
    agreement_document_hash = factory.LazyAttribute(lambda o: sha(o.slug))
    agreement_valid_from = factory.LazyFunction(lambda: dt.date.today() - dt.timedelta(days=365))
    agreement_valid_until = factory.LazyFunction(lambda: dt.date.today() + dt.timedelta(days=365))
    status = SiteStatus.ACTIVE


class PurposeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Purpose
        django_get_or_create = ("code",)

    code = "topic-classification"
    name = "Topic classification of texts"


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset
        skip_postgeneration_save = True

    site = factory.SubFactory(SiteFactory)
    name = factory.Sequence(lambda n: f"dataset-{n}")
    data_categories = factory.LazyFunction(lambda: ["text"])
    lawful_basis = LawfulBasis.CONSENT
    retention_until = factory.LazyFunction(lambda: dt.date.today() + dt.timedelta(days=365))
    processing_countries = factory.LazyFunction(lambda: ["EEA"])
    record_count = 0

    @factory.post_generation
    def purposes(self, create, extracted, **kwargs):
        for purpose in extracted if extracted is not None else [PurposeFactory()]:
            self.purposes.add(purpose)


class PolicyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ResidencyPolicy

    name = "eu-federation"
    version = factory.Sequence(lambda n: n + 1)
    status = PolicyStatus.PUBLISHED
    allowed_areas = factory.LazyFunction(lambda: ["EEA"])
    min_eligible_sites = 1
    min_records_per_site = 1
    requires_approval = False
    requires_dpia = True
    aggregator_operator = factory.LazyFunction(
        lambda: {"organisation": "Koordinierungsstelle GmbH", "country": "DE", "role": "controller"}
    )
    host_operator = factory.LazyFunction(
        lambda: {"organisation": "Rechenzentrum Nord GmbH", "country": "DE", "role": "processor"}
    )
    published_at = factory.LazyFunction(timezone.now)
    created_by_name = "factory"
    published_by_name = "factory"
    content_hash = factory.LazyAttribute(lambda o: sha(f"{o.name}{o.version}"))


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrainingRun
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"run-{n}")
    purpose = factory.SubFactory(PurposeFactory)
    policy = factory.SubFactory(PolicyFactory)
    aggregator_country = "DE"
    requested_by_name = "factory"

    @factory.post_generation
    def datasets(self, create, extracted, **kwargs):
        for dataset in extracted or ():
            self.datasets.add(dataset)


class DpiaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dpia

    run = factory.SubFactory(RunFactory)
    reference = factory.Sequence(lambda n: f"DPIA-{n}")
    status = DpiaStatus.APPROVED
    document_hash = factory.LazyAttribute(lambda o: sha(o.reference))
    approved_by_name = "factory"
    approved_at = factory.LazyFunction(timezone.now)
    valid_until = factory.LazyFunction(lambda: dt.date.today() + dt.timedelta(days=180))


class RoundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Round

    run = factory.SubFactory(RunFactory)
    number = factory.Sequence(lambda n: n + 1)
    requested_by_name = "factory"


class ConsentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Consent

    dataset = factory.SubFactory(DatasetFactory)
    purpose = factory.SubFactory(PurposeFactory)
    subject_pseudonym = factory.Sequence(lambda n: f"subj-{n:06d}")
    granted_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=30))
