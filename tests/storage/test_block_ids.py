"""The ids of resumable Azure writes' blocks: what a resume reads back from a listing of them."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airlock.errors import IntegrityError
from airlock.storage.block_ids import (
    ID_LENGTH,
    KeptCheck,
    content_head,
    furthest,
    kept_blocks,
    make_id,
    parse_id,
    staged_runs,
)

TAG = "0123456789abcdef" * 2 + "01234567"


@given(
    tag=st.text("0123456789abcdef", min_size=40, max_size=40),
    seq=st.integers(0, 49_999),
    label=st.none() | st.integers(0, 99_999_999),
    block=st.none() | st.binary(max_size=300),
)
def test_an_id_carries_its_tag_number_label_and_content_hash_in_58_characters(
    tag: str, seq: int, label: int | None, block: bytes | None
) -> None:
    block_id = make_id(tag, seq, label, block)
    assert len(block_id) == ID_LENGTH and block_id.isascii()
    assert parse_id(block_id) == (tag, seq, label, None if block is None else content_head(block))


def test_ids_of_plain_writes_and_of_airlock_before_content_hashes_are_not_read() -> None:
    plain = "0f1e2d3c4b5a6978-00000003".ljust(ID_LENGTH, "-")  # AzureWriter's
    old = f"r1-{TAG}-00003-00000007"  # the r1 layout: no content hash, so nothing a resume can check
    assert len(old) == ID_LENGTH
    assert parse_id(plain) is None and parse_id(old) is None
    assert parse_id(make_id(TAG, 3, 7, b"x")[:-1] + "!") is None  # not base64
    for tag in ("plan1", TAG.upper(), TAG[:-2] + " 0"):  # not one, or not what a listing gives back
        with pytest.raises(ValueError, match="40 lower-case hex digits"):
            make_id(tag, 0, None, b"")
    superscript = make_id(TAG, 3, 7, b"x")
    assert parse_id(superscript[:29] + "²" + superscript[30:]) is None  # a digit to isdigit(), not to int()


def blocks(*contents: tuple[int, int | None, bytes]) -> list[tuple[str, int]]:
    return [(make_id(TAG, seq, label, data), len(data)) for seq, label, data in contents]


def test_a_run_ends_at_a_missing_block_or_one_two_writes_staged_with_other_content() -> None:
    a, b, c = b"a" * 10, b"b" * 20, b"c" * 30
    listed = blocks((0, 0, a), (1, 1, b), (2, 2, c), (4, 4, c))  # block 3 never landed
    assert [blk.seq for blk in staged_runs(listed)[TAG]] == [0, 1, 2]
    staged = furthest(staged_runs(listed))
    assert staged is not None and staged.tag == TAG and staged.size == 60 and staged.marks[-1] == (2, 60)
    # Two killed runs of one plan that wrote block 1 differently: which one a commit takes is not known.
    twice = blocks((0, 0, a), (1, 1, b), (1, 1, b"B" * 20), (2, 2, c))
    assert [blk.seq for blk in staged_runs(twice)[TAG]] == [0]
    assert furthest(staged_runs(twice)) == furthest(staged_runs(blocks((0, 0, a))))


def test_the_kept_check_names_the_block_whose_bytes_differ_and_counts_the_bytes() -> None:
    a, b = bytes(range(256)) * 4, b"\x07" * 500
    run = staged_runs(blocks((0, 0, a), (1, None, b[:200]), (2, 1, b[200:])))[TAG]
    kept = kept_blocks(run, len(a + b))
    assert kept is not None and len(kept) == 3 and kept_blocks(run, len(a) + 200) is None  # no mark ends there
    check = KeptCheck(kept, "the target")
    for i in range(0, len(a + b), 333):
        check.feed((a + b)[i : i + 333])
    check.finish()
    wrong = KeptCheck(kept, "the target")
    wrong.feed(a + b[:250])
    with pytest.raises(IntegrityError, match=r"staged block 2 \(bytes 1224-1523\) is not the source's bytes"):
        wrong.feed(b"\x08" * 250)
    short = KeptCheck(kept, "the target")
    short.feed(a)
    with pytest.raises(IntegrityError, match="1024 of the 1524 staged bytes were given again"):
        short.finish()
    with pytest.raises(IntegrityError, match="more bytes given again than were staged"):
        KeptCheck(kept[:1], "the target").feed(a + b"!")


def test_the_tag_is_packed_in_base64_without_its_padding() -> None:
    block_id = make_id(TAG, 0, None, b"")
    assert base64.b64decode(block_id[2:29] + "=").hex() == TAG
