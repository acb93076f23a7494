"""Write paths of the sites app, one module per concept: sites, purposes, datasets,
residency policies, consent.

Every use-case service runs in one durable transaction, validates everything before it
writes, writes its rows and appends exactly one ledger event. Bad input raises
``InvalidInput`` (nothing written); a wrong state raises ``TransitionNotAllowed``.
Ledger payloads carry ids, codes, hashes and counts, never names, e-mails or free text
(a reason is logged as its SHA-256, the text stays on the row).
"""

from sites.services._kit import (  # the kit's shared patterns, used by callers
    CLOCK_SKEW,
    CREDENTIALS_REF,
    HEX64,
    IN_CHUNK,
    MAX_CONSENT_BATCH,
    MAX_REPORTED_ROW_ERRORS,
    PSEUDONYM,
    sha256_text,
    unique_or_invalid,
)
from sites.services.consent import (
    ConsentBatchResult,
    consent_record_batch,
)
from sites.services.datasets import (
    DATASET_UPDATABLE,
    dataset_register,
    dataset_update,
    dataset_validate,
    dataset_withdraw,
)
from sites.services.policies import (
    MAX_DPF_LISTING_AGE_DAYS,
    POLICY_DEFAULTS,
    POLICY_FIELDS,
    POLICY_FIELDS_IF_SET,
    adequacy_list_record,
    policy_content,
    policy_content_hash,
    policy_create_draft,
    policy_new_version,
    policy_publish,
    policy_update_draft,
    policy_validate,
)
from sites.services.purposes import (
    purpose_create,
    purpose_validate,
)
from sites.services.sites import (
    SITE_FIELDS,
    SITE_UPDATABLE,
    site_activate,
    site_register,
    site_suspend,
    site_update,
    site_validate,
)

__all__ = [
    "CLOCK_SKEW",
    "CREDENTIALS_REF",
    "DATASET_UPDATABLE",
    "HEX64",
    "IN_CHUNK",
    "MAX_CONSENT_BATCH",
    "MAX_DPF_LISTING_AGE_DAYS",
    "MAX_REPORTED_ROW_ERRORS",
    "POLICY_DEFAULTS",
    "POLICY_FIELDS",
    "POLICY_FIELDS_IF_SET",
    "PSEUDONYM",
    "SITE_FIELDS",
    "SITE_UPDATABLE",
    "ConsentBatchResult",
    "adequacy_list_record",
    "consent_record_batch",
    "dataset_register",
    "dataset_update",
    "dataset_validate",
    "dataset_withdraw",
    "policy_content",
    "policy_content_hash",
    "policy_create_draft",
    "policy_new_version",
    "policy_publish",
    "policy_update_draft",
    "policy_validate",
    "purpose_create",
    "purpose_validate",
    "sha256_text",
    "site_activate",
    "site_register",
    "site_suspend",
    "site_update",
    "site_validate",
    "unique_or_invalid",
]
