"""Words as the quality gates and the comparison report see them: `\\w+`, case folded.

The English word lists serve the checks that need a language (interrogative form, stopwords);
a text with none of the common words is left alone by them.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_WORD = re.compile(r"\w+")
_CLAUSE_END = re.compile(r"[.!?;:,()\"“”。？！]|\s[-–—]\s|\n")

_WH = "what which who whom whose when where why how whether"
_AUX = (
    "is are was were am do does did have has had can could will would shall should "
    "may might must isn aren wasn weren don doesn didn haven hasn hadn can't cannot couldn "
    "won wouldn shouldn"
)
# very common English words: a text with none of them is not checked for English-only rules
_ENGLISH = (
    "the a an of to in on at for and or but is are was were be been do does did what which who "
    "whom whose when where why how that this these those it its with from by as not there their "
    "they he she his her we you i"
)
_STOP = (
    "about above after again against all also am any because before being below between both "
    "can could down during each few further had has have having here hers herself him himself "
    "into itself just me more most my myself no nor now off once only other our ours out over "
    "own same should so some such than then theirs them themselves through too under until up "
    "very while will would your yours yourself yes one may might must shall upon s t"
)
WH_WORDS, AUX_WORDS = frozenset(_WH.split()), frozenset(_AUX.split())
ENGLISH = frozenset(_ENGLISH.split())
STOPWORDS = ENGLISH | frozenset(_STOP.split())


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def ngrams(ws: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)]


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Snowball's English stemmer (nltk, pure Python): "analyses" meets "analysis"."""
    return _stemmer().stem(word)


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    from nltk.stem.snowball import EnglishStemmer

    return EnglishStemmer()


def looks_english(ws: list[str]) -> bool:
    return any(w in ENGLISH for w in ws)


def interrogative(text: str) -> bool:
    """English interrogative form: some clause opens with an auxiliary verb ("Did ...",
    "..., is it ...") or has a wh-word among its first three words ("In what year ...")."""
    for clause in _CLAUSE_END.split(text):
        ws = words(clause)
        if ws and (ws[0] in AUX_WORDS or any(w in WH_WORDS for w in ws[:3])):
            return True
    return False
