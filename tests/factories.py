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


# -- the second factor (fedgov/second_factor.py) -------------------------------------------


def totp_device(user: User):
    """A confirmed TOTP device of ``user``, as enrolment or ``createuser --totp`` leaves it."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.create(user=user, name="test authenticator", confirmed=True)


def totp_code(device, *, at: float | None = None) -> str:
    """The code an authenticator app shows for ``device`` now (or at unix time ``at``)."""
    from django_otp.oath import TOTP

    clock = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    if at is not None:
        clock.time = at
    return f"{clock.token():0{device.digits}d}"


def verified_actor(user: User):
    """``user`` as an actor who has just passed the second factor with a real code."""
    from fedgov.second_factor import actor_by_token

    return actor_by_token(user=user, token=totp_code(totp_device(user)))


def verified(user: User) -> User:
    """``user`` as django-otp's middleware leaves it after a verified sign-in.

    For ``APIClient.force_authenticate``, which bypasses the session and its middleware.
    """
    user.otp_device = totp_device(user)
    return user


def login_verified(client, user: User) -> None:
    """Log ``client`` in as ``user`` with a session that passed the second factor."""
    from django_otp import DEVICE_ID_SESSION_KEY

    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = totp_device(user).persistent_id
    session.save()
