from __future__ import annotations

from synthgen.corpus.selection import WARN_SHARE, keyword_matcher, select, warnings
from synthgen.records import Chunk


def chunk(text: str) -> Chunk:
    return Chunk(id=text[:8], source="a.txt", text=text)


def test_word_match_is_whole_word_and_case_insensitive() -> None:
    m = keyword_matcher(["great", "film"], "word")
    assert m("A GREAT day")
    assert m("the Film.")
    assert not m("the greatest day")  # whole words only
    assert not m("filmmaker")


def test_substring_match_is_the_notebooks_exact_test() -> None:
    m = keyword_matcher(["great", "film"], "substring")
    assert m("the greatest day")  # "great" in "greatest"
    assert m("filmmaker")
    assert not m("A GREAT day")  # case-sensitive, as `w in text`


def test_word_match_handles_non_word_characters() -> None:
    assert keyword_matcher(["C++"], "word")("I like C++ a lot")


def test_no_keywords_keeps_everything() -> None:
    assert keyword_matcher([], "word")("anything")


def test_select_bounds_are_strict_and_reasons_counted() -> None:
    chunks = [chunk("f" * 10), chunk("film " * 3), chunk("x" * 12), chunk("film" + "y" * 20)]
    kept, rejected = select(chunks, min_chars=10, max_chars=20, words=["film"], match="substring")
    assert [c.text for c in kept] == ["film " * 3]
    assert rejected == {"too_short": 1, "no_keyword": 1, "too_long": 1}
    assert len(kept) + sum(rejected.values()) == len(chunks)


def test_a_reason_that_drops_most_chunks_is_one_warning_naming_its_setting() -> None:
    got = warnings("train", 2477, {"too_long": 2174, "no_keyword": 100}, 1000, 2000, "drop")
    assert got == [
        "warning: 2174 of 2477 train chunks (88%) are too long (chunking.max_chars=2000 "
        "characters); raise it or use chunking.bounds=fit"
    ]
    assert warnings("val", 10, {"too_short": 6}, 400, 1400, "fit") == [
        "warning: 6 of 10 val chunks (60%) are too short (chunking.min_chars=400 characters); "
        "lower it"  # fit already joined what it could
    ]
    (kw,) = warnings("train", 10, {"no_keyword": 9}, 400, 1400, "fit")
    assert kw.endswith(
        "mention none of keywords.words; use keywords=none to keep every chunk, or other words"
    )
    # half or less, or no chunk at all: nothing to say
    assert warnings("train", 10, {"too_long": 5, "too_short": 5}, 1, 2, "drop") == []
    assert warnings("val", 0, {}, 1, 2, "drop") == []
    assert WARN_SHARE == 0.5
