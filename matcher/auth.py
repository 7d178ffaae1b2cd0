"""Bearer tokens to roles, and which role may do what.

Every call carries ``authorization: Bearer <token>``. Tokens are configured in a JSON file
(``{"tokens": [{"name": "office-12-station-3", "role": "station", "sha256": "<hex>"}]}``): the
file holds SHA-256 digests, never the tokens, so a leaked configuration does not leak access.
A development token (``--dev-token``) is an administrator; it is for development and tests.
Comparison is constant-time (:func:`hmac.compare_digest`).

Roles (DESIGN.md, "Security"):

- ``station``: capture stations enrol, update, verify and identify, and read a person's record;
- ``caseworker``: verify, identify, read records, follow dedup jobs and their results;
- ``unit_officer``: nothing of the matcher's (the card workflow's vital events only);
- ``approver``: read records;
- ``admin``: everything, including delete, dedup and service information.

The card workflow (``amayesh.v1.Enrollment``, :mod:`enrollment.service`) adds its actions, named
``enr.*`` so they never mix with the matcher's: caseworkers run the office's steps, a
``unit_officer`` (the directorate's authorised unit) records vital events, approvers (the
ministry) decide on files, and admins add offices, open rounds and may run the office's steps.
The workflow checks roles again itself; these entries refuse a call before it reaches it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from matcher.errors import MatcherError
from matcher.store import Actor

ROLES = ("station", "caseworker", "unit_officer", "approver", "admin")

#: The card workflow's actions per role (enrollment/workflow.py checks the same roles again).
_ENR_READ = frozenset({"enr.read_file", "enr.reports"})
_ENR_CASEWORK = frozenset(
    {
        "enr.import_households",
        "enr.open_application",
        "enr.recall",
        "enr.schedule",
        "enr.record_payment",
        "enr.collect_documents",
        "enr.report_vital_event",
        "enr.capture",
        "enr.resolve_adjudication",
        "enr.record_details",
        "enr.submit",
        "enr.issue_cards",
        "enr.hand_over",
        "enr.caseworker_inbox",
    }
)

PERMISSIONS: dict[str, frozenset[str]] = {
    "station": frozenset({"enroll", "update", "verify", "identify", "get_person"}),
    "caseworker": frozenset(
        {"verify", "identify", "get_person", "info", "watch_job", "dedup_results"}
    )
    | _ENR_CASEWORK
    | _ENR_READ,
    "unit_officer": frozenset({"enr.record_vital_event", "enr.read_file"}),
    "approver": frozenset({"get_person", "enr.decide", "enr.ministry_inbox"}) | _ENR_READ,
    "admin": _ENR_CASEWORK
    | _ENR_READ
    | frozenset({"enr.add_office", "enr.open_round", "enr.ministry_inbox"})
    | frozenset(
        {
            "enroll",
            "update",
            "delete",
            "verify",
            "identify",
            "get_person",
            "info",
            "start_dedup",
            "watch_job",
            "dedup_results",
        }
    ),
}


class Unauthenticated(MatcherError, PermissionError):
    """No token, or a token nobody was given."""


class Forbidden(MatcherError, PermissionError):
    """A valid token whose role may not do this."""


@dataclass(frozen=True)
class _Entry:
    name: str
    role: str
    digest: bytes


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Authenticator:
    """Resolves a call's metadata to an :class:`Actor` allowed to perform an action."""

    def __init__(self, entries: Iterable[tuple[str, str, bytes]] = ()) -> None:
        self._entries: list[_Entry] = []
        for name, role, d in entries:
            if role not in ROLES:
                raise ValueError(f"token {name!r}: unknown role {role!r} (one of {ROLES})")
            if len(d) != 32:
                raise ValueError(f"token {name!r}: a SHA-256 digest is 32 bytes")
            self._entries.append(_Entry(name, role, d))

    @classmethod
    def from_settings(cls, dev_token: str | None, tokens_file: str | None) -> Authenticator:
        entries: list[tuple[str, str, bytes]] = []
        if dev_token:
            entries.append(("dev", "admin", digest(dev_token)))
        if tokens_file:
            try:
                doc = json.loads(Path(tokens_file).read_text())
                for t in doc["tokens"]:
                    entries.append((str(t["name"]), str(t["role"]), bytes.fromhex(t["sha256"])))
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise ValueError(f"cannot read the token file {tokens_file}: {e}") from e
        return cls(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def actor(self, metadata: Iterable[tuple[str, str | bytes]] | None, action: str) -> Actor:
        token = None
        for key, value in metadata or ():
            if key == "authorization":
                text = value.decode() if isinstance(value, bytes) else value
                scheme, _, rest = text.partition(" ")
                if scheme.lower() == "bearer" and rest.strip():
                    token = rest.strip()
        if token is None:
            raise Unauthenticated("no bearer token: send 'authorization: Bearer <token>'")
        d = digest(token)
        found = None
        for e in self._entries:  # every entry is compared: the time does not say which matched
            if hmac.compare_digest(e.digest, d):
                found = e
        if found is None:
            raise Unauthenticated("the bearer token is not valid")
        if action not in PERMISSIONS[found.role]:
            doing = action.removeprefix("enr.").replace("_", " ")
            raise Forbidden(f"role {found.role!r} may not {doing}")
        return Actor(found.name, found.role)
