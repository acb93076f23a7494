"""The evidence bundle beside a report: the ledger's bundle format plus the report's data.

``audit.bundle.bundle_write`` writes the ledger slice from the first to the last cited
event with checkpoints, inclusion proofs and public keys. This module adds three files
and lists them in the manifest (whose hashes ``python -m audit.verify`` already checks):

- ``report/data.jsonl``: the canonical report data, one RFC 8785 JSON object per line
  (``{"kind": "run", ...}`` then ``{"kind": "round", ...}`` per round);
- ``report/statement.json``: RFC 8785 JSON naming the report id, the SHA-256 of the data
  and of the signed PDF, the anchor size and the cited sequence numbers;
- ``report/signature.json``: a detached Ed25519 signature of the statement's bytes by the
  ledger's active key (whose public key is in ``keys.json``);
- ``pki/ca.pem``: the CA chain of the PDF's PAdES signature and, when a TSA is configured,
  the TSA's pinned certificates: what ``pyhanko sign validate --trust`` needs. The
  manifest's ``pki`` entry states that no revocation information exists for them.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import shutil
import tempfile
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from audit import keys
from audit.bundle import bundle_write
from audit.services import canonical_json
from reports import signing

DATA = "report/data.jsonl"
STATEMENT = "report/statement.json"
SIGNATURE = "report/signature.json"
CA_CHAIN = "pki/ca.pem"


def plain(value: Any) -> Any:
    """Dataclasses, dates and tuples as JSON values (times as UTC ISO 8601)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, float):
        # RFC 8785 numbers are IEEE doubles; a string keeps the figure exactly as shown.
        return repr(value)
    return value


def data_line(kind: str, facts: Any) -> bytes:
    return canonical_json({"kind": kind, **plain(facts)}) + b"\n"


def statement_bytes(
    *, report_id: str, data_sha256: str, pdf_sha256: str, anchor_size: int, cited: list[int]
) -> bytes:
    return canonical_json(
        {
            "format": "fedgov-report-statement/1",
            "report_id": report_id,
            "data_sha256": data_sha256,
            "pdf_sha256": pdf_sha256,
            "anchor_size": anchor_size,
            "cited_seqs": sorted(set(cited)),
        }
    )


def report_bundle_write(
    *,
    out: Path,
    report_id: str,
    data_file: Path,
    pdf_sha256: str,
    cited: list[int],
    anchor_size: int,
) -> str:
    """Write the zip bundle to ``out``; returns the zip's SHA-256.

    Raises ``InvalidInput`` (from ``bundle_write``) when no event is cited.
    """
    seqs = sorted({s for s in cited if s < anchor_size})
    with tempfile.TemporaryDirectory(prefix="fedgov-report-") as work:
        folder = Path(work) / "bundle"
        bundle_write(
            first_seq=seqs[0] if seqs else 0,
            last_seq=seqs[-1] if seqs else -1,
            out=folder,
            keep_checkpoint=anchor_size,
        )
        manifest = json.loads((folder / "manifest.json").read_text())
        (folder / "report").mkdir()
        shutil.copyfile(data_file, folder / DATA)
        data_sha = hashlib.sha256((folder / DATA).read_bytes()).hexdigest()
        statement = statement_bytes(
            report_id=report_id,
            data_sha256=data_sha,
            pdf_sha256=pdf_sha256,
            anchor_size=anchor_size,
            cited=seqs,
        )
        (folder / STATEMENT).write_bytes(statement)
        key = keys.active_key()
        signature = {
            "algorithm": "Ed25519",
            "key_id": key.key_id,
            "signed_file": STATEMENT,
            "signature": base64.b64encode(key.sign(statement)).decode(),
        }
        (folder / SIGNATURE).write_text(json.dumps(signature, indent=2, sort_keys=True))
        (folder / "pki").mkdir()
        (folder / CA_CHAIN).write_text(
            "".join(
                path.read_text() for path in signing.validation_roots(signing.signing_identity())
            )
        )
        for name in (DATA, STATEMENT, SIGNATURE, CA_CHAIN):
            manifest["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        manifest["report"] = {"report_id": report_id, "statement": STATEMENT}
        # Informative, as keys.json: a regulator compares the CA with the organisation's
        # published one before trusting it.
        manifest["pki"] = {
            "ca_chain": CA_CHAIN,
            "signature": "PAdES B-LT"
            if settings.FEDGOV_TSA_URL
            else "PAdES, no signature timestamp: no trusted time",
            "revocation_info": signing.NO_REVOCATION_INFO,
        }
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
        digest = hashlib.sha256()
        with zipfile.ZipFile(out, "x", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(folder).as_posix())
    with out.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
