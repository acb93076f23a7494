"""RFC 3161 timestamp tokens: ask a TSA for one, and check one; no Django.

A token is requested over SHA-256 of the exact bytes it dates (a signed checkpoint note,
UTF-8) with pyHanko's own client (``pyhanko.sign.timestamps.HTTPTimeStamper``, RFC 3161
§3.4 over HTTP, with a nonce it checks in the reply). It is checked with pyHanko too: the
``TSTInfo`` message imprint must be the digest of those bytes (RFC 3161 §2.4.2), the
token's CMS signature must verify, and the TSA's certificate must chain to a pinned TSA
certificate (its CA, or the TSA certificate itself) and carry ``id-kp-timeStamping``.
Revocation is not checked: a pinned loopback or organisation TSA publishes none, and a
verifier who wants it validates with the TSA's own revocation data.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from asn1crypto import cms, tsp, x509
from pyhanko.keys import load_certs_from_pemder
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko_certvalidator import ValidationContext


class TimestampError(Exception):
    """The TSA could not be reached, or refused, or answered with no valid token."""


@dataclass(frozen=True)
class TokenCheck:
    ok: bool
    time: datetime | None
    problem: str = ""


def stamper(url: str, timeout: float = 5.0) -> HTTPTimeStamper:
    """pyHanko's RFC 3161 HTTP client for ``url`` (also given to pyHanko's PDF signer)."""
    return HTTPTimeStamper(url, timeout=int(max(timeout, 1)))


def request_token(url: str, data: bytes, timeout: float = 5.0) -> bytes:
    """A DER timestamp token over SHA-256(``data``) from the TSA at ``url``.

    Raises ``TimestampError`` when the TSA is down, refuses, or answers badly.
    """
    digest = hashlib.sha256(data).digest()
    try:
        token = asyncio.run(stamper(url, timeout).async_timestamp(digest, "sha256"))
    except Exception as exc:  # aiohttp and pyHanko raise many kinds; all mean "no token"
        raise TimestampError(f"the TSA at {url} gave no timestamp: {exc!r}") from exc
    dumped: bytes = token.dump()
    return dumped


def token_time(token: bytes) -> datetime:
    """The ``genTime`` a token states (unchecked: use ``check_token`` to trust it)."""
    moment: datetime = _tst_info(cms.ContentInfo.load(token))["gen_time"].native
    return moment


def token_facts(token: bytes) -> tuple[datetime, str, str]:
    """(genTime, serial number in hex, the TSA's name) a token states, for display."""
    info = cms.ContentInfo.load(token)
    tst = _tst_info(info)
    name = tst["tsa"].native if tst["tsa"].native else None
    if isinstance(name, dict):  # a directoryName: its common name reads best
        name = name.get("common_name") or ", ".join(str(v) for v in name.values())
    if not name:
        certs = info["content"]["certificates"]
        name = certs[0].chosen.subject.human_friendly if certs else "(unnamed TSA)"
    return tst["gen_time"].native, format(tst["serial_number"].native, "x"), str(name)


def _tst_info(info: cms.ContentInfo) -> tsp.TSTInfo:
    parsed = info["content"]["encap_content_info"]["content"].parsed
    if not isinstance(parsed, tsp.TSTInfo):
        raise ValueError("the token does not encapsulate a TSTInfo")
    return parsed


def load_pinned(paths: list[Path]) -> list[x509.Certificate]:
    """The certificates in the PEM/DER files ``paths`` (the TSA's CA or certificate)."""
    # pyHanko's loader is untyped; it yields asn1crypto certificates.
    return [
        cert
        for path in paths
        for cert in load_certs_from_pemder([str(path)])  # type: ignore[no-untyped-call]
    ]


def check_token(token: bytes, data: bytes, pinned: list[x509.Certificate]) -> TokenCheck:
    """Whether ``token`` dates exactly ``data`` and is signed by a TSA ``pinned`` vouches for."""
    try:
        info = cms.ContentInfo.load(token)
        signed = info["content"]
        when = _tst_info(info)["gen_time"].native
    except (ValueError, TypeError, KeyError) as exc:
        return TokenCheck(False, None, f"not an RFC 3161 token: {exc}")
    if not pinned:
        return TokenCheck(False, when, "no TSA certificate is pinned")
    context = ValidationContext(
        trust_roots=pinned, allow_fetching=False, revocation_mode="soft-fail"
    )
    try:
        status = asyncio.run(
            validate_tst_signed_data(signed, context, lambda algo: hashlib.new(algo, data).digest())
        )
    except Exception as exc:  # pyHanko's validation errors have no common base
        return TokenCheck(False, when, f"the token does not validate: {exc}")
    if not status.get("intact"):
        return TokenCheck(False, when, "the token's imprint is not the digest of what it dates")
    if not status.get("valid"):
        return TokenCheck(False, when, "the token's signature does not verify")
    if status.get("trust_problem_indic") is not None:
        return TokenCheck(
            False,
            when,
            f"the TSA does not chain to a pinned certificate: {status['trust_problem_indic']}",
        )
    return TokenCheck(True, when)
