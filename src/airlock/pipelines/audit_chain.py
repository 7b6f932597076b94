"""The audit trail's hash chain: what an entry is, what is hashed, and how a chain is verified.

An entry is ``{seq, time, principal, action, resources, artifacts, catalogDigest, result,
prevHash}``; its ``hash`` is ``sha256:`` + the SHA-256 of the entry's canonical JSON (keys sorted,
no insignificant whitespace, UTF-8, no floats: every value is a string, an integer, a list or an
object of those). ``prevHash`` is the hash of the entry before it (the first entry's is
:data:`GENESIS`), so the hash of the last entry, the *head*, covers every entry before it.

Pure: no I/O. The database (``audit_store.py``) and an exported JSONL file are verified by the
same :class:`ChainVerifier`, fed one entry at a time (memory bounded whatever the chain's length).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

GENESIS = "sha256:" + "0" * 64
# How many recent hashes the verifier remembers, to tell an inserted entry from a deleted one.
_RECENT = 1024


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the audit trail. ``artifacts`` are ``{"reference", "digest", ...}`` objects;
    ``result`` is ``Succeeded``, ``Failed: <one line>``, ``Denied: …`` or an action's own word."""

    seq: int
    time: str
    principal: str
    action: str
    resources: list[str] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    catalog_digest: str | None = None
    result: str = "Succeeded"
    prev_hash: str = GENESIS
    hash: str = ""

    def content(self) -> dict[str, Any]:
        """What is hashed: every field but ``hash``, in the JSON names an export writes."""
        return {
            "seq": self.seq,
            "time": self.time,
            "principal": self.principal,
            "action": self.action,
            "resources": self.resources,
            "artifacts": self.artifacts,
            "catalogDigest": self.catalog_digest,
            "result": self.result,
            "prevHash": self.prev_hash,
        }

    def computed_hash(self) -> str:
        return "sha256:" + hashlib.sha256(canonical_json(self.content())).hexdigest()

    def sealed(self) -> AuditEntry:
        """This entry with its ``hash`` computed."""
        return AuditEntry(**{**self.__dict__, "hash": self.computed_hash()})

    def to_json(self) -> dict[str, Any]:
        """The entry as ``audit list`` and ``audit export`` show it (one JSONL line each)."""
        return {**self.content(), "hash": self.hash}

    @classmethod
    def from_json(cls, doc: Any, *, where: str) -> AuditEntry:
        """An entry from its JSON form. Raises AuditChainBroken (naming ``where``): not such an object."""
        try:
            return cls(
                seq=_typed(doc["seq"], int),
                time=_typed(doc["time"], str),
                principal=_typed(doc["principal"], str),
                action=_typed(doc["action"], str),
                resources=_typed(doc["resources"], list),
                artifacts=_typed(doc["artifacts"], list),
                catalog_digest=doc.get("catalogDigest"),
                result=_typed(doc["result"], str),
                prev_hash=_typed(doc["prevHash"], str),
                hash=_typed(doc["hash"], str),
            )
        except (KeyError, TypeError) as exc:
            from airlock.errors import AuditChainBroken

            raise AuditChainBroken(f"{where}: not an audit entry ({exc!s:.80})") from None


def _typed(value: Any, kind: type) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{value!r:.40} is not {kind.__name__}")
    return value


def jsonl_line(doc: dict[str, Any]) -> str:
    """One line of an export (``airlock audit export``, the dashboard's download): the entry's JSON
    (:meth:`AuditEntry.to_json`), compact, UTF-8 as is, and a newline."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n"


def canonical_json(value: Any) -> bytes:
    """The one byte form that is hashed: sorted keys, ``,``/``:`` separators, UTF-8 (floats are
    refused, so no number has two spellings)."""

    def no_floats(o: Any) -> Any:
        if isinstance(o, float):
            raise TypeError("audit entries hold no floats")
        if isinstance(o, dict):
            return {k: no_floats(v) for k, v in o.items()}
        if isinstance(o, list):
            return [no_floats(v) for v in o]
        return o

    return json.dumps(no_floats(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass
class ChainReport:
    """What :class:`ChainVerifier` found: entries checked, the head hash, and the first break."""

    entries: int = 0
    head: str = GENESIS
    broken: str | None = None  # one line naming the first broken entry and why
    broken_seq: int | None = None
    # An unanchored chain (a file exported --since): its first entry's seq and prevHash, which the
    # head of the export before it must equal.
    start: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": self.broken is None,
            "entries": self.entries,
            "head": self.head,
            **({"start": self.start} if self.start is not None else {}),
            **({"firstBroken": {"seq": self.broken_seq, "reason": self.broken}} if self.broken else {}),
        }


class ChainVerifier:
    """Checks entries fed in ``seq`` order; stops at the first break. ``expect_head``: a head hash
    recorded earlier (``audit verify --expect-head``), which some entry must have. Not ``anchored``:
    the entries may start anywhere in the chain (an export ``--since``), the first one's ``prevHash``
    taken as given and reported (``start``) for comparing with the previous export's head. Memory: the last
    :data:`_RECENT` hashes (to say that an entry was inserted rather than one deleted).

    Per entry, the link is checked before the content, so the entry named is the one tampered
    with: an entry whose ``prevHash`` is the hash of the one *two* back follows an inserted entry
    (named as inserted); a gap in ``seq``, or a ``prevHash`` no recent entry has, follows a deleted
    one; an entry whose content does not hash to its ``hash`` was edited.
    """

    def __init__(self, expect_head: str | None = None, *, anchored: bool = True) -> None:
        self.report = ChainReport()
        self._anchored = anchored
        self._expect = expect_head
        self._seen_expected = expect_head is None
        self._prev: AuditEntry | None = None
        self._recent: OrderedDict[str, int] = OrderedDict()

    def feed(self, entry: AuditEntry) -> bool:
        """Check one more entry; False once the chain is broken (later entries are not looked at)."""
        if self.report.broken is not None:
            return False
        prev = self._prev
        if prev is None and not self._anchored:  # a tail of the chain: its first link is taken as given
            self.report.start = {"seq": entry.seq, "prevHash": entry.prev_hash}
        expected_prev = prev.hash if prev else GENESIS if self._anchored else entry.prev_hash
        if prev is not None and entry.seq != prev.seq + 1:
            if entry.seq <= prev.seq:
                return self._break(entry.seq, f"audit entry {entry.seq} is out of order (after entry {prev.seq})")
            missing = prev.seq + 1 if entry.seq == prev.seq + 2 else f"{prev.seq + 1}-{entry.seq - 1}"
            return self._break(
                prev.seq + 1, f"audit entry {missing} was deleted (entry {entry.seq} follows {prev.seq})"
            )
        if entry.prev_hash != expected_prev:
            earlier = self._recent.get(entry.prev_hash)
            if earlier is not None and prev is not None:
                return self._break(
                    prev.seq,
                    f"audit entry {prev.seq} was inserted (entry {entry.seq} chains to entry {earlier}, before it)",
                )
            if prev is None:
                return self._break(
                    entry.seq, f"audit entry {entry.seq} does not start the chain: entries before it were deleted"
                )
            return self._break(
                entry.seq,
                f"audit entry {entry.seq} does not chain to entry {prev.seq}: an entry between them was deleted, "
                f"or entry {prev.seq} was edited and re-hashed",
            )
        if entry.computed_hash() != entry.hash:
            return self._break(entry.seq, f"audit entry {entry.seq} was edited (its content does not hash to its hash)")
        self._prev = entry
        self._seen_expected = self._seen_expected or entry.hash == self._expect
        self._recent[entry.hash] = entry.seq
        if len(self._recent) > _RECENT:
            self._recent.popitem(last=False)
        self.report.entries += 1
        self.report.head = entry.hash
        return True

    def finish(self) -> ChainReport:
        """The report; given an ``expect_head`` (a head hash recorded earlier), also a break when no
        entry of the chain has that hash (the tail was cut, or rewritten from there on)."""
        if self.report.broken is None and not self._seen_expected:
            self.report.broken = (
                f"the audit trail has no entry with the expected head {self._expect}: "
                f"its tail was removed or rewritten (its head is now {self.report.head})"
            )
        return self.report

    def _break(self, seq: int, reason: str) -> bool:
        self.report.broken = reason
        self.report.broken_seq = seq
        return False
