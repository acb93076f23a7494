"""Choices for the sites app: every enumerated value in one place, no magic strings."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class SiteStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", _("Suspended")


class AgreementType(models.TextChoices):
    JOINT_CONTROLLER = "joint_controller", _("Joint-controller arrangement (Art. 26)")
    PROCESSOR = "processor", _("Processor agreement (Art. 28)")


# A site's role in the federation in the Regulation's terms, the same words in every output
# (demo, admin, dashboard, PDF report, Art. 30 record); rendered in the reader's language.
ROLE_LABELS = {
    "joint_controller": _("joint controller (Art. 26)"),
    "processor": _("processor (Art. 28)"),
    "controller": _("controller"),
}


def role_label(agreement_type: str) -> str:
    """A site's role, from its agreement type, in the words every output uses."""
    label = ROLE_LABELS.get(agreement_type)
    return str(label) if label is not None else agreement_type.replace("_", " ")


class LawfulBasis(models.TextChoices):
    CONSENT = "6(1)(a)", _("Art. 6(1)(a) consent")
    CONTRACT = "6(1)(b)", _("Art. 6(1)(b) contract")
    LEGAL_OBLIGATION = "6(1)(c)", _("Art. 6(1)(c) legal obligation")
    VITAL_INTERESTS = "6(1)(d)", _("Art. 6(1)(d) vital interests")
    PUBLIC_TASK = "6(1)(e)", _("Art. 6(1)(e) public task")
    LEGITIMATE_INTERESTS = "6(1)(f)", _("Art. 6(1)(f) legitimate interests")


class Art9Condition(models.TextChoices):
    NONE = "", _("None recorded")
    EXPLICIT_CONSENT = "9(2)(a)", _("Art. 9(2)(a) explicit consent")
    EMPLOYMENT = "9(2)(b)", _("Art. 9(2)(b) employment and social security")
    VITAL_INTERESTS = "9(2)(c)", _("Art. 9(2)(c) vital interests")
    NOT_FOR_PROFIT = "9(2)(d)", _("Art. 9(2)(d) not-for-profit body")
    MADE_PUBLIC = "9(2)(e)", _("Art. 9(2)(e) made public by the data subject")
    LEGAL_CLAIMS = "9(2)(f)", _("Art. 9(2)(f) legal claims or courts")
    SUBSTANTIAL_PUBLIC_INTEREST = "9(2)(g)", _("Art. 9(2)(g) substantial public interest")
    HEALTH_CARE = "9(2)(h)", _("Art. 9(2)(h) health or social care")
    PUBLIC_HEALTH = "9(2)(i)", _("Art. 9(2)(i) public health")
    RESEARCH = "9(2)(j)", _("Art. 9(2)(j) archiving, research or statistics")


# Art. 9(1)'s special categories as data-category names: any of them makes a dataset
# special-category whatever its flag says.
ART9_CATEGORIES = {
    "racial-or-ethnic-origin": "racial or ethnic origin",
    "political-opinions": "political opinions",
    "religious-or-philosophical-beliefs": "religious or philosophical beliefs",
    "trade-union-membership": "trade-union membership",
    "genetic": "genetic data",
    "biometric-identification": "biometric data for uniquely identifying a person",
    "health": "data concerning health",
    "sex-life-or-sexual-orientation": "sex life or sexual orientation",
}
# Art. 10: personal data relating to criminal convictions and offences (court decisions
# contain them).
CRIMINAL_CATEGORY = "criminal-convictions-and-offences"


class Art10Basis(models.TextChoices):
    """What Art. 10 allows criminal-conviction data to be processed under."""

    NONE = "", _("None recorded")
    OFFICIAL_AUTHORITY = "official_authority", _("Under the control of official authority")
    UNION_LAW = "union_law", _("Authorised by Union law with appropriate safeguards")
    MEMBER_STATE_LAW = "member_state_law", _("Authorised by Member State law with safeguards")


class TransferMechanism(models.TextChoices):
    ADEQUACY = "adequacy", _("Adequacy decision (Art. 45)")
    SCC = "scc", _("Standard contractual clauses (Art. 46(2)(c))")
    BCR = "bcr", _("Binding corporate rules (Art. 47)")


class PolicyStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PUBLISHED = "published", _("Published")


class ConsentEventKind(models.TextChoices):
    GRANT = "grant", _("Granted")
    WITHDRAW = "withdraw", _("Withdrawn")


class PartyRole(models.TextChoices):
    """Who an organisation is for the federation's processing (Art. 4(7), 4(8), 26)."""

    CONTROLLER = "controller", _("Controller")
    JOINT_CONTROLLER = "joint_controller", _("Joint controller (Art. 26)")
    PROCESSOR = "processor", _("Processor (Art. 28)")


class SafeguardMechanism(models.TextChoices):
    """A ground for a transfer other than an adequacy decision (Art. 46, 47, 49)."""

    SCC = "scc", _("Standard contractual clauses, Decision (EU) 2021/914 (Art. 46(2)(c))")
    BCR = "bcr", _("Binding corporate rules (Art. 46(2)(b), 47)")
    DEROGATION = "derogation", _("Derogation for a specific situation (Art. 49), exceptional")


class Art49Ground(models.TextChoices):
    EXPLICIT_CONSENT = "49(1)(a)", _("Art. 49(1)(a) explicit consent")
    CONTRACT_WITH_SUBJECT = "49(1)(b)", _("Art. 49(1)(b) contract with the data subject")
    CONTRACT_IN_INTEREST = "49(1)(c)", _("Art. 49(1)(c) contract in the subject's interest")
    PUBLIC_INTEREST = "49(1)(d)", _("Art. 49(1)(d) important reasons of public interest")
    LEGAL_CLAIMS = "49(1)(e)", _("Art. 49(1)(e) legal claims")
    VITAL_INTERESTS = "49(1)(f)", _("Art. 49(1)(f) vital interests")
    PUBLIC_REGISTER = "49(1)(g)", _("Art. 49(1)(g) public register")


class CertificationScheme(models.TextChoices):
    """The qualifying fact a scoped adequacy decision needs from its recipient."""

    DPF = "dpf", _("EU-US Data Privacy Framework List (decision C(2023) 4745)")
    PIPEDA = "pipeda", _("Subject to Canada's PIPEDA (decision 2002/2/EC)")


class NeighbouringRelation(models.TextChoices):
    """Which client-level datasets differential privacy treats as neighbours (Flower's terms)."""

    ADD_OR_REMOVE_ONE = "add-or-remove-one", _("Add or remove one client")
    REPLACE_ONE = "replace-one", _("Replace one client")


class RequiredDpMechanism(models.TextChoices):
    """The DP mechanism a policy demands of every run under it ("" = any that adds noise)."""

    ANY = "", _("Any mechanism that adds noise")
    CENTRAL = "central", _("Central DP, server-side clipping")
    CLIENT_CLIPPING = "client-clipping", _("Central DP, clipping at the sites")
    LOCAL = "local", _("Local DP at the sites")
