"""The block ids of resumable Azure writes, and what a resume reads from them (no SDK here).

Uncommitted blocks can be listed (id and size) but not read, so the id carries what a resume
needs, in 58 characters: ``r2``, the tag (40 hex digits, as 27 base64 characters), the block
number (5 digits), the label of the unit (archive member) the block ends when it ends one (8
digits, or dashes), and the first 12 bytes of the block's SHA-256 (16 base64 characters, or
dashes when the write will not be checked), which a resume that has the bytes again checks them
against (:class:`KeptCheck`). The tag names the plan (the engine's). Azure wants every block id
of a blob to have the same length, also across writes (a blob's leftover uncommitted blocks of
another length make the next upload fail): the plain writer's ids are padded to the same 58
characters, as were the ``r1-`` ids of airlock before content hashes (which a resume no longer
reads: it starts over), and never start with ``r``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from airlock.errors import IntegrityError
from airlock.storage.base import Staged

ID_LENGTH = 58
TAG_HEX = 40
_VERSION = "r2"
_TAG = slice(2, 29)
_SEQ = slice(29, 34)
_LABEL = slice(34, 42)
_HASH = slice(42, 58)
_DIGITS = re.compile("[0-9]+")
_TAG_FORM = re.compile(f"[0-9a-f]{{{TAG_HEX}}}")
# A resumable write ends a block at a mark once it holds this much, while fewer than
# MARKED_BLOCKS_MAX blocks are used: at most half a blob's 50,000 blocks go to marks.
MARK_MIN = 64 * 1024
MARKED_BLOCKS_MAX = 25_000  # half of Azure's 50,000 (azure_blob.MAX_BLOCKS)


@dataclass(frozen=True)
class StagedBlock:
    seq: int
    label: int | None
    size: int
    id: str
    sha256_head: bytes | None  # the first 12 bytes of the SHA-256 of the block's content, if it was hashed


def check_tag(tag: str) -> None:
    """Raises ValueError unless ``tag`` is 40 lower-case hex digits (a caller's bug: the port says what a tag is)."""
    if not _TAG_FORM.fullmatch(tag):
        raise ValueError(f"a resumable write's tag is {TAG_HEX} lower-case hex digits, not {tag!r}")


def content_head(block: bytes | memoryview) -> bytes:
    """The part of a block's SHA-256 its id carries."""
    return hashlib.sha256(block).digest()[:12]


def make_id(tag: str, seq: int, label: int | None, block: bytes | memoryview | None) -> str:
    """The id of block ``seq`` (holding ``block``; None: not hashed) of a resumable write tagged
    ``tag`` (40 hex digits).

    Raises:
        ValueError: ``tag`` is not 40 lower-case hex digits (:func:`check_tag`).
    """
    check_tag(tag)
    packed = base64.b64encode(bytes.fromhex(tag)).decode()[:27]  # 20 bytes: 27 characters and one "="
    mark = "-" * 8 if label is None else f"{label:08d}"
    head = "-" * 16 if block is None else base64.b64encode(content_head(block)).decode()
    return f"{_VERSION}{packed}{seq:05d}{mark}{head}"


def parse_id(block_id: str) -> tuple[str, int, int | None, bytes | None] | None:
    """(tag, block number, label, content hash head) of a resumable write's block id; None for any other id."""
    if len(block_id) != ID_LENGTH or not block_id.startswith(_VERSION):
        return None
    seq, mark = block_id[_SEQ], block_id[_LABEL]
    if not _DIGITS.fullmatch(seq) or not (_DIGITS.fullmatch(mark) or mark == "-" * 8):
        return None  # ASCII digits only: str.isdigit() takes "²", which int() refuses
    try:
        tag = base64.b64decode(block_id[_TAG] + "=", validate=True).hex()
        head = None if block_id[_HASH] == "-" * 16 else base64.b64decode(block_id[_HASH], validate=True)
    except (binascii.Error, ValueError):
        return None
    return tag, int(seq), int(mark) if mark.isdigit() else None, head


def staged_runs(blocks: Iterable[tuple[str, int]]) -> dict[str, list[StagedBlock]]:
    """The (id, size) of uncommitted blocks, by tag: each tag's blocks 0, 1, … up to the first that
    is missing (a block staged after one that never landed cannot be kept) or that two writes
    staged with other content (which one a commit would take is not known)."""
    found: dict[str, dict[int, list[StagedBlock]]] = {}
    for block_id, size in blocks:
        parsed = parse_id(block_id)
        if parsed is not None:
            tag, seq, label, head = parsed
            found.setdefault(tag, {}).setdefault(seq, []).append(StagedBlock(seq, label, size, block_id, head))
    runs: dict[str, list[StagedBlock]] = {}
    for tag, by_seq in found.items():
        run: list[StagedBlock] = []
        while len(by_seq.get(len(run), ())) == 1:
            run.append(by_seq[len(run)][0])
        runs[tag] = run
    return runs


def marks_of(run: list[StagedBlock]) -> list[tuple[int, int, int]]:
    """(label, end offset, blocks up to it) of every marked block of a contiguous run."""
    out: list[tuple[int, int, int]] = []
    end = 0
    for i, block in enumerate(run):
        end += block.size
        if block.label is not None:
            out.append((block.label, end, i + 1))
    return out


def furthest(runs: dict[str, list[StagedBlock]]) -> Staged | None:
    """What is staged: of several killed runs' blocks, the run that got furthest; None without a mark."""
    best = max(runs.values(), key=lambda run: (marks_of(run) or [(0, 0, 0)])[-1][1], default=[])
    marks = marks_of(best)
    if not marks:
        return None
    parsed = parse_id(best[0].id)
    assert parsed is not None
    return Staged(size=marks[-1][1], tag=parsed[0], marks=tuple((label, end) for label, end, _ in marks))


def kept_blocks(run: list[StagedBlock], keep: int) -> list[StagedBlock] | None:
    """``run``'s blocks up to the mark that ends at byte ``keep``; None when none does."""
    counts = [n for _label, end, n in marks_of(run) if end == keep]
    return run[: counts[0]] if counts else None


class KeptCheck:
    """Checks the bytes of kept blocks, given again in order in chunks of any size, against the
    hashes their ids carry.

    Raises (from :meth:`feed` and :meth:`finish`):
        IntegrityError: a block's bytes are not the ones staged, or more or fewer bytes were given.
    """

    def __init__(self, blocks: list[StagedBlock], display: str) -> None:
        self._blocks = blocks
        self._display = display
        self._index = 0
        self._offset = 0  # of the block being checked
        self._hash = hashlib.sha256()
        self._filled = 0

    @property
    def blocks(self) -> list[StagedBlock]:
        return self._blocks

    @property
    def size(self) -> int:
        return sum(b.size for b in self._blocks)

    @property
    def given(self) -> int:
        """How many bytes were given so far."""
        return self._offset + self._filled

    def feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            if self._index == len(self._blocks):
                raise IntegrityError(f"{self._display}: more bytes given again than were staged ({self.size})")
            block = self._blocks[self._index]
            take = min(len(view), block.size - self._filled)
            self._hash.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == block.size:
                self._end_block(block)

    def _end_block(self, block: StagedBlock) -> None:
        if block.sha256_head is None:
            raise IntegrityError(
                f"{self._display}: staged block {block.seq} was written without its content hash, so it cannot be "
                "checked"
            )
        if self._hash.digest()[:12] != block.sha256_head:
            end = self._offset + block.size
            raise IntegrityError(
                f"{self._display}: staged block {block.seq} (bytes {self._offset}-{end - 1}) is not the "
                "source's bytes there"
            )
        self._offset += block.size
        self._index += 1
        self._hash = hashlib.sha256()
        self._filled = 0

    def finish(self) -> None:
        if self._index != len(self._blocks):
            raise IntegrityError(f"{self._display}: {self.given} of the {self.size} staged bytes were given again")
