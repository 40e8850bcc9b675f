"""Hard-negative guard: the positive's own text is never a negative; near-duplicates are
removed and counted. A bag-of-words model gives exact, hand-checkable similarities."""

from __future__ import annotations

from collections import Counter

import pytest

from synthgen.embed.negatives import Guard, mine, random_negatives, select
from synthgen.rundir.reading import Split

POS = "camera director handheld shot"
CORPUS = {
    "pos": POS,
    "pos_copy": POS,  # the same text from another file: another chunk id
    "near": "camera director handheld film",  # scores exactly as the positive does
    # the question's own words in another order: scores above the positive. (Not the question's
    # exact text: sentence-transformers 6.3's mine_hard_negatives drops a corpus entry equal to
    # its query before returning candidates, so it would never reach the guard.)
    "closer": "handheld camera director",
    "music": "music score orchestra",
    "cast": "casting actress lead",
    "horror": "horror theater audience camera",
}
ROWS = [{"id": "q1", "question": "camera director handheld", "chunk_id": "pos"}]


def bow_model(texts: list[str]):
    """A SentenceTransformer whose embedding is the normalized word-count vector."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize
    from sentence_transformers.sentence_transformer.modules import BoW

    vocab = sorted({w for t in texts for w in t.split()})
    return SentenceTransformer(modules=[BoW(vocab), Normalize()], device="cpu")


@pytest.fixture(scope="module")
def bow():
    return bow_model([*CORPUS.values(), *(r["question"] for r in ROWS)])


def test_select_never_uses_the_positive_text_even_with_the_guard_off() -> None:
    removed: Counter[str] = Counter()
    cands = [(POS, 1.0), ("other text", 0.4), ("third", 0.3)]
    kept = select(cands, POS, 0.9, 2, Guard(None, None, None), removed)
    assert kept == ["other text", "third"]
    assert removed == {"identical": 1}


def test_select_guard_rules_and_counts() -> None:
    removed: Counter[str] = Counter()
    cands = [("a", 0.95), ("b", 0.86), ("c", 0.84), ("d", 0.5), ("e", 0.2)]
    # positive 0.88: relative 5% -> bound 0.836; a and b are too close, c too (0.84 > 0.836)
    kept = select(cands, "p", 0.88, 2, Guard(relative_margin=0.05), removed)
    assert kept == ["d", "e"] and removed == {"relative_margin": 3}
    removed.clear()
    kept = select(cands, "p", 0.88, 5, Guard(None, absolute_margin=0.1, max_score=0.45), removed)
    assert kept == ["e"] and removed == {"absolute_margin": 3, "max_score": 1}


def test_mine_removes_identical_and_near_duplicates_and_counts_them(bow) -> None:
    split = Split("train", ROWS, CORPUS)
    mined = mine(bow, split, k=2, guard=Guard(relative_margin=0.05), range_max=10)
    negs = mined.negatives[0]
    assert len(negs) == 2
    assert POS not in negs  # neither the positive nor its copy under another chunk id
    assert CORPUS["near"] not in negs and CORPUS["closer"] not in negs
    # horror shares "camera" with the question: the hardest negative that is not a duplicate
    assert negs[0] == CORPUS["horror"]
    st = mined.stats
    assert st["removed"] == {"identical": 1, "relative_margin": 2}
    assert st["removed_by_guard"] == 3
    assert st["questions_without_negative"] == 0


def test_mine_without_guard_still_never_uses_the_positive(bow) -> None:
    split = Split("train", ROWS, CORPUS)
    mined = mine(bow, split, k=5, guard=Guard(None, None, None), range_max=10)
    assert POS not in mined.negatives[0]
    assert mined.negatives[0][:2] == [CORPUS["closer"], CORPUS["near"]]  # unguarded: hardest first
    assert mined.stats["removed"] == {"identical": 1}


def test_random_negatives_exclude_the_positive_text() -> None:
    split = Split("train", ROWS, CORPUS)
    for seed in range(20):
        (negs,) = random_negatives(split, k=4, seed=seed)
        assert len(negs) == 4 and POS not in negs and len(set(negs)) == 4
