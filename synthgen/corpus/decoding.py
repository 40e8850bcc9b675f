"""Text files decoded exactly: UTF-8 first, else the encoding whose text a language could have.

Every single-byte encoding decodes almost any bytes, so "it decodes" proves nothing. A French
Latin-1 text decodes as cp1250 too: `à` becomes `ŕ`, `forêt` becomes `foręt`, and both are
letters, so charset-normalizer's mess detector sees nothing wrong and its ranking on a short
text can go either way. What the wrong decoding cannot fake is a coherent alphabet: `ŕ`
(Slovak), `č` (Czech) and `ę` (Polish) never meet in one language, while `à`, `è` and `ê`
are all French. So each candidate is decoded and scored by the share of its non-ASCII
letters that one language's alphabet holds, less what no text has (control characters, a
symbol or a capital inside a word: `mo¿e`, `wyjeŸdzie`). The best score wins; on a tie the
Western encoding (cp1252, which the WHATWG Encoding Standard also uses for `latin1` labels)
comes first, then charset-normalizer's own order.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from synthgen.schema import Corpus  # corpus.encoding's default

# lower-case non-ASCII letters of each language's alphabet (and common loan letters)
ALPHABETS: dict[str, str] = {
    "french": "àâæçéèêëîïôœùûüÿ",
    "german": "äöüß",
    "spanish": "áéíñóúü",
    "portuguese": "áâãàçéêíóôõú",
    "italian": "àèéìíîòóù",
    "catalan": "àçèéíïòóúü",
    "dutch": "áéèëïóöü",
    "danish_norwegian": "æøåéó",
    "swedish_finnish": "åäöéšž",
    "icelandic": "áéíóúýþæöð",
    "polish": "ąćęłńóśźż",
    "czech": "áčďéěíňóřšťúůýž",
    "slovak": "áäčďéíĺľňóôŕšťúýž",
    "hungarian": "áéíóöőúüű",
    "slovene_croatian_bosnian": "čćđšž",
    "romanian": "ăâîșțşţ",
    "turkish": "çğıöşüîâ",
    "lithuanian": "ąčęėįšųūž",
    "latvian": "āčēģīķļņšūž",
    "estonian": "äõöüšž",
    "albanian": "çë",
    "russian": "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "ukrainian": "абвгґдеєжзиіїйклмнопрстуфхцчшщьюя",
    "belarusian": "абвгдеёжзійклмнопрстуўфхцчшыьэюя",
    "bulgarian": "абвгдежзийклмнопрстуфхцчшщъьюя",
    "serbian_macedonian": "абвгдђѓежзѕијклљмнњопрстћќуфхцчџш",
    "greek": "αβγδεζηθικλμνξοπρστυφχψωάέήίόύώϊϋΐΰς",
    "hebrew": "אבגדהוזחטיכךלמםנןסעפףצץקרשת",
    "arabic": "ءآأؤإئابةتثجحخدذرزسشصضطظعغفقكلمنهوىي",
}
_SETS = {name: frozenset(letters) for name, letters in ALPHABETS.items()}

# tried in this order; earlier wins a tie (equal scores, different text)
CANDIDATES = (
    "cp1252",
    "iso-8859-15",
    "cp1250",
    "iso-8859-2",
    "cp1257",
    "cp1254",
    "cp1251",
    "koi8-r",
    "koi8-u",
    "iso-8859-5",
    "cp1253",
    "iso-8859-7",
    "cp1255",
    "cp1256",
    "mac-roman",
    "latin-1",  # decodes every byte: last resort
)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
MARGIN = 0.1  # a lead of this much plausibility (0-1) over the runner-up is a sure choice


@dataclass
class Decoded:
    text: str
    encoding: str  # Python codec name
    confidence: str  # "exact" (UTF-8, a BOM, forced, or every fitting encoding gives this
    # text), "high" (clearly the most plausible), "low" (close call: check the file)
    score: float = 1.0  # plausibility of the chosen text (0-1)
    runner_up: dict[str, Any] | None = None  # {"encoding", "score"} of the next best text
    candidates: list[str] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        """What summary.json records for a file that is not UTF-8."""
        return {
            "encoding": self.encoding,
            "confidence": self.confidence,
            "score": round(self.score, 3),
            "runner_up": self.runner_up,
        }


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return (
        0x3040 <= o <= 0x30FF  # kana
        or 0x3400 <= o <= 0x9FFF  # CJK ideographs
        or 0xAC00 <= o <= 0xD7AF  # hangul
        or 0xF900 <= o <= 0xFAFF
        or 0xFF00 <= o <= 0xFFEF  # full-width forms
    )


_NON_ASCII = re.compile(r"[^\t\n\r\f\v\x20-\x7e]")  # and C0 controls (UTF-16 read as 8 bits)
SAMPLE = 200_000  # characters scored per candidate (the decision needs no more)
# apostrophes, Catalan l·l, hyphens, CJK punctuation: fine between two letters
_IN_WORD_OK = frozenset("’‘'·‐‑-") | frozenset(
    map(chr, [*range(0x3000, 0x3040), *range(0xFF00, 0xFF10)])
)
_ONE_LETTER = frozenset("àèéóò")  # one-letter words: French à, Italian è, Portuguese é, ...
_NON_LATIN = ("CYRILLIC", "GREEK", "HEBREW", "ARABIC", "CJK", "HIRAGANA", "KATAKANA", "HANGUL")


def _script(ch: str) -> str:
    return unicodedata.name(ch, "?").split(" ", 1)[0]


def plausibility(text: str) -> float:
    """Share (0-1) of the text's non-ASCII letters that one language could write, after a
    penalty for characters no text has where they stand."""
    letters: dict[str, int] = {}
    bad = 0
    text = text[:SAMPLE]
    n = len(text)
    for m in _NON_ASCII.finditer(text):
        i, ch = m.start(), m.group()
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cn", "Co", "Cs") or ch == "\ufffd":
            bad += 1  # C1 controls (Latin-1 read of cp1252 bytes), unassigned, private use
            continue
        prev = text[i - 1] if i > 0 else " "
        nxt = text[i + 1] if i + 1 < n else " "
        if cat in ("Lm", "Sk"):  # a stray caron or breve: "ˇQué" is "¡Qué" read as cp1250
            bad += prev.isalpha() or nxt.isalpha()
        elif cat[0] in "LM":
            if cat == "Lu" and prev.islower() and nxt.isalpha():
                bad += 1  # a capital inside a lower-case word: "wyjeŸdzie"
            elif (
                not prev.isalnum()
                and not nxt.isalnum()
                and ch.lower() not in _ONE_LETTER
                and _script(ch) == "LATIN"
            ):
                bad += 1  # a word of one accented letter no language has: "réalisateur ŕ"
            elif (prev.isascii() and prev.isalpha()) or (nxt.isascii() and nxt.isalpha()):
                if _script(ch) in _NON_LATIN:
                    bad += 1  # Latin and Cyrillic (Greek, ...) in one word: "Trиs"
                else:
                    low = ch.lower() if len(ch.lower()) == 1 else ch
                    letters[low] = letters.get(low, 0) + 1
            else:
                low = ch.lower() if len(ch.lower()) == 1 else ch
                letters[low] = letters.get(low, 0) + 1
        elif prev.isalpha() and nxt.isalpha() and ch not in _IN_WORD_OK:
            bad += 1  # a symbol inside a word: "mo¿e", "b³ad"
    total = sum(letters.values())
    if not total:
        return 1.0 if not bad else 1.0 / (1 + 2 * bad)
    best = max(sum(c for ch, c in letters.items() if ch in s) for s in _SETS.values())
    best = max(best, sum(c for ch, c in letters.items() if _is_cjk(ch)))
    return best / (total + 2 * bad)


def _lead(best: str, other: str, score: float, other_score: float) -> float:
    """How much better the chosen text is than the runner-up where they differ.

    Two single-byte decodings line up character by character: judged on the words that
    differ ("À" against "ہ" in a French page), one odd letter is a clear call, not a 0.1%
    difference lost in a long text. Otherwise the whole-text scores."""
    if len(best) != len(other):
        return score - other_score
    n = min(len(best), SAMPLE)
    where = [i for i in range(n) if best[i] != other[i]]
    if not where:
        return score - other_score

    def words(text: str) -> str:
        spans = []
        for i in where[:2000]:
            a = i
            while a > 0 and not text[a - 1].isspace():
                a -= 1
            b = i
            while b < n and not text[b].isspace():
                b += 1
            spans.append(text[a:b])
        return " ".join(dict.fromkeys(spans))

    return plausibility(words(best)) - plausibility(words(other))


def _strict(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def decode_bytes(data: bytes, encoding: str = Corpus.encoding) -> Decoded:
    """Decode a text file's bytes; `encoding` other than "auto" forces that codec.

    Raises UnicodeDecodeError when the forced codec does not fit or nothing does.
    """
    if encoding != "auto":
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as e:
            raise UnicodeDecodeError(
                e.encoding, e.object, e.start, e.end, f"not valid {encoding} (corpus.encoding)"
            ) from None
        if text.startswith("\ufeff"):
            text = text[1:]
        return Decoded(text, codecs.lookup(encoding).name, "exact")
    for bom, name in _BOMS:
        if data.startswith(bom) and (text := _strict(data, name)) is not None:
            label = "utf-8" if name == "utf-8-sig" else codecs.lookup(name).name
            return Decoded(text.lstrip("\ufeff"), label, "exact")
    if (text := _strict(data, "utf-8")) is not None:
        return Decoded(text, "utf-8", "exact")

    order = list(CANDIDATES)
    try:  # other scripts (CJK, UTF-16 without a BOM): take charset-normalizer's proposals too
        from charset_normalizer import from_bytes

        for m in from_bytes(data):
            name = codecs.lookup(m.encoding).name
            if name.startswith("utf-") and b"\x00" not in data:
                continue  # UTF-16/32 text without a BOM has zero bytes; else it is noise
            if name not in {codecs.lookup(c).name for c in order}:
                order.insert(order.index("latin-1"), name)
    except Exception:  # the detector is a helper here, never a reason to fail
        pass
    texts: dict[str, list[str]] = {}  # decoded text -> encodings that give it
    for name in order:
        t = _strict(data, name)
        if t is not None:
            texts.setdefault(t, []).append(codecs.lookup(name).name)
    if not texts:
        raise UnicodeDecodeError("utf-8", data, 0, len(data), "no known encoding fits")
    ranked = sorted(
        ((plausibility(t), -i, t, encs) for i, (t, encs) in enumerate(texts.items())),
        reverse=True,
    )
    score, _, best, encs = ranked[0]
    tried = [e for es in texts.values() for e in es]
    if len(ranked) == 1:
        return Decoded(best, encs[0], "exact", score, None, tried)
    second = ranked[1]
    sure = "high" if _lead(best, second[2], score, second[0]) >= MARGIN else "low"
    return Decoded(
        best,
        encs[0],
        sure,
        score,
        {"encoding": second[3][0], "score": round(second[0], 3)},
        tried,
    )
