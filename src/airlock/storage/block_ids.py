"""The block ids of resumable Azure writes, and what a resume reads from them (no SDK here).

Uncommitted blocks can be listed (id and size) but not read, so the id carries what a resume
needs: ``r1-<tag, 40>-<block number, 5 digits>-<label, 8 digits, or dashes>``, 58 characters. The
tag names the plan (the engine's), the label the unit (archive member) the block ends, when it
ends one. Azure wants every block id of a blob to have the same length: the plain writer's ids are
padded to the same 58 characters, and never start with ``r1-``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from airlock.storage.base import Staged

ID_LENGTH = 58
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


def make_id(tag: str, seq: int, label: int | None) -> str:
    mark = "-" * 8 if label is None else f"{label:08d}"
    return f"r1-{tag:-<40}-{seq:05d}-{mark}"


def parse_id(block_id: str) -> tuple[str, int, int | None] | None:
    """(tag, block number, label) of a resumable write's block id; None for any other id."""
    parts = block_id.split("-")
    if len(block_id) != ID_LENGTH or parts[0] != "r1" or not parts[1].isalnum():
        return None
    seq, mark = block_id[44:49], block_id[50:58]
    if not seq.isdigit():
        return None
    return parts[1], int(seq), int(mark) if mark.isdigit() else None


def staged_runs(blocks: Iterable[tuple[str, int]]) -> dict[str, list[StagedBlock]]:
    """The (id, size) of uncommitted blocks, by tag: each tag's blocks 0, 1, … up to the first that
    is missing (a block staged after one that never landed cannot be kept)."""
    found: dict[str, dict[int, StagedBlock]] = {}
    for block_id, size in blocks:
        parsed = parse_id(block_id)
        if parsed is not None:
            tag, seq, label = parsed
            found.setdefault(tag, {})[seq] = StagedBlock(seq, label, size, block_id)
    runs: dict[str, list[StagedBlock]] = {}
    for tag, by_seq in found.items():
        run: list[StagedBlock] = []
        while len(run) in by_seq:
            run.append(by_seq[len(run)])
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
    tag = parse_id(best[0].id)
    assert tag is not None
    return Staged(size=marks[-1][1], tag=tag[0], marks=tuple((label, end) for label, end, _ in marks))


def kept_ids(run: list[StagedBlock], keep: int) -> list[str] | None:
    """The ids of ``run``'s blocks up to the mark that ends at byte ``keep``; None when none does."""
    counts = [n for _label, end, n in marks_of(run) if end == keep]
    return [block.id for block in run[: counts[0]]] if counts else None
