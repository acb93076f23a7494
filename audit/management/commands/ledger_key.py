"""``manage.py ledger_key``: the trusted-key list (list, rotate, revoke, trust-active, trust)."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit import keys, note, trust, witness
from audit.choices import KeyRole
from audit.leaf import format_time
from fedgov.actors import Actor
from fedgov.errors import FedgovError


def _public_key(spec: str) -> Ed25519PublicKey:
    """A PEM public key file, or a signed-note verifier key ``name+hash+base64``."""
    path = Path(spec)
    if path.is_file():
        key = serialization.load_pem_public_key(path.read_bytes())
        if not isinstance(key, Ed25519PublicKey):
            raise CommandError(f"{spec} does not hold an Ed25519 public key")
        return key
    parts = spec.split("+", 2)  # the base64 key may itself hold "+"
    if len(parts) != 3:
        raise CommandError(f"{spec!r} is neither a PEM file nor a name+hash+key verifier key")
    try:
        raw = base64.b64decode(parts[2], validate=True)
    except binascii.Error as exc:
        raise CommandError(f"verifier key {spec!r} is not base64") from exc
    # 0x01: an Ed25519 signed-note key (a log); 0x04: a cosignature/v1 key (a witness).
    if len(raw) != 33 or raw[:1] not in (note.ED25519_TYPE, witness.COSIGNATURE_TYPE):
        raise CommandError(f"verifier key {spec!r} is not an Ed25519 (0x01 or 0x04) key")
    key = Ed25519PublicKey.from_public_bytes(raw[1:])
    expected = (
        note.key_hash(parts[0], key)
        if raw[:1] == note.ED25519_TYPE
        else witness.cosigner_key_id(parts[0], key)
    )
    if expected.hex() != parts[1]:
        raise CommandError(f"verifier key {spec!r}: its key hash does not match name and key")
    return key


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CommandError(f"--since {text!r} is not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise CommandError(f"--since {text!r} needs a time zone (e.g. Z)")
    return moment.astimezone(UTC)


class Command(BaseCommand):
    help = (
        "The explicit list of trusted keys; a key file in FEDGOV_KEY_DIR trusts nothing. "
        "list: every trusted key with its window and reason. rotate: new signing key, "
        "trusted from now, the old one's window ends now. revoke KEY_ID: end trust in a "
        "compromised key from --since (default now). trust-active: trust the current "
        "signing key (after replacing FEDGOV_SIGNING_KEY_FILE). trust: pin another key, "
        "e.g. a witness's (--role witness --name NAME --public-key PEM|vkey). Every change "
        "is a ledger event and needs --reason."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["list", "rotate", "revoke", "trust-active", "trust"])
        parser.add_argument("key_id", nargs="?", help="the key to revoke")
        parser.add_argument("--reason", default="", help="why (kept in the ledger)")
        parser.add_argument("--since", help="revoke: compromised since (ISO 8601, with zone)")
        parser.add_argument("--role", choices=KeyRole.values, default=KeyRole.WITNESS)
        parser.add_argument("--name", help="trust: the key's signed-note name")
        parser.add_argument("--public-key", help="trust: PEM public key file or verifier key")
        parser.add_argument("--actor", default="ledger_key", help="recorded as system:<actor>")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system(options["actor"])
        action = options["action"]
        try:
            if action == "rotate":
                key = trust.key_rotate(actor=actor, reason=options["reason"])
                self.stdout.write(f"new active key {key.key_id}")
            elif action == "revoke":
                if not options["key_id"]:
                    raise CommandError("revoke needs the KEY_ID to revoke")
                row = trust.key_revoke(
                    actor=actor,
                    key_id=options["key_id"],
                    reason=options["reason"],
                    since=_moment(options["since"]),
                )
                # key_revoke always closes the window; "open" would only show a broken invariant.
                until = format_time(row.valid_to) if row.valid_to else "open"
                self.stdout.write(f"revoked {row.key_id} from {until}")
            elif action == "trust-active":
                row = trust.key_trust_active(actor=actor, reason=options["reason"])
                self.stdout.write(f"trusted {row.key_id}")
            elif action == "trust":
                if not options["name"] or not options["public_key"]:
                    raise CommandError("trust needs --name and --public-key")
                row = trust.key_trust(
                    actor=actor,
                    role=options["role"],
                    name=options["name"],
                    public_key=_public_key(options["public_key"]),
                    reason=options["reason"],
                )
                self.stdout.write(f"trusted {row.key_id} ({row.role} {row.name})")
        except (FedgovError, ImproperlyConfigured) as exc:
            raise CommandError(str(exc)) from exc
        active = keys.active_key().key_id
        for role in KeyRole.values:
            for view in trust.trusted(role):
                if view.role == KeyRole.LOG:
                    marker = "active " if view.key_id == active else "retired"
                else:
                    marker = "witness"
                until = format_time(view.valid_to) if view.valid_to else "open"
                vkey = (
                    note.verifier_key(view.name, view.public_key)
                    if view.role == KeyRole.LOG
                    else witness.cosigner_vkey(view.name, view.public_key)
                )
                self.stdout.write(
                    f"{marker} {view.key_id} {vkey} valid {format_time(view.valid_from)} "
                    f"to {until}; {view.reason}"
                    + (f"; ended: {view.end_reason}" if view.end_reason else "")
                )
