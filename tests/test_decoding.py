"""Text files decoded exactly: real sentences in French, German, Spanish and Polish, saved in
the encodings their writers' editors used, read back letter for letter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synthgen.config import check
from synthgen.corpus.decoding import decode_bytes, plausibility
from synthgen.corpus.reading import read_corpus
from synthgen.errors import ConfigError
from synthgen.generate import pipeline
from tests.conftest import REPO, compose

FRENCH = (
    "Très tôt le matin, à l'heure où blanchit la campagne, le garçon traversa la forêt. "
    "Il s'arrêta près de l'église, où l'on entendait déjà les cloches."
)
GERMAN = (
    "Über den Wolken muss die Freiheit wohl grenzenlos sein. Die Mädchen gingen früh "
    "zur Schule, während die Jungen im großen Hof Fußball spielten."
)
SPANISH = (
    "¿Dónde está la estación? ¡Qué año tan extraño! El señor llegó tarde y pidió un café "
    "con leche; la niña sonrió y siguió leyendo su libro."
)
POLISH = (REPO / "tests" / "data" / "pan_tadeusz.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "encoding", "label"),
    [
        (FRENCH, "latin-1", "cp1252"),  # the case: cp1250 would give "ŕ", "foręt"
        (FRENCH, "cp1252", "cp1252"),
        (GERMAN, "latin-1", "cp1252"),
        (SPANISH, "cp1252", "cp1252"),
        (SPANISH + " «Sí», dijo — 5 €.", "cp1252", "cp1252"),
        (POLISH, "cp1250", "cp1250"),
        (POLISH, "iso-8859-2", "iso8859-2"),
    ],
)
def test_every_letter_survives(text: str, encoding: str, label: str) -> None:
    d = decode_bytes(text.encode(encoding))
    assert d.text == text
    assert d.encoding == label
    assert d.confidence in ("high", "exact")
    assert d.runner_up is None or d.runner_up["score"] < d.score


def test_short_french_is_not_read_as_central_european() -> None:
    for text in ("Très à la forêt.", "Un été à Paris", "Où es-tu allé, garçon ?"):
        d = decode_bytes(text.encode("latin-1"))
        assert d.text == text, d
        assert d.encoding == "cp1252"


def test_the_wrong_alphabet_scores_lower() -> None:
    raw = FRENCH.encode("latin-1")
    assert plausibility(raw.decode("cp1252")) == 1.0
    assert plausibility(raw.decode("cp1250")) < 0.8  # ŕ (Slovak), č (Czech), ę (Polish)
    polish = POLISH.encode("cp1250")
    assert plausibility(polish.decode("cp1252")) < 0.9  # ³ and ¿ inside words
    assert plausibility(polish.decode("cp1250")) == 1.0


def test_utf8_bom_and_forced_encodings() -> None:
    assert decode_bytes("naïve".encode()).encoding == "utf-8"
    assert decode_bytes("\ufeffbom".encode()).text == "bom"
    assert decode_bytes("ça".encode("utf-16")).text == "ça"
    # forced: the user knows better (a one-word file is ambiguous to any detector)
    raw = "foręt".encode("cp1250")
    assert decode_bytes(raw).text == "forêt"  # ties go to cp1252: the text is French-looking
    forced = decode_bytes(raw, "cp1250")
    assert (forced.text, forced.encoding, forced.confidence) == ("foręt", "cp1250", "exact")
    with pytest.raises(UnicodeDecodeError, match="not valid utf-8"):
        decode_bytes(b"caf\xe9", "utf-8")


def test_summary_records_encoding_and_confidence(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "fr.txt").write_bytes((FRENCH + "\n\n").encode("latin-1") * 30)
    (docs / "pl.txt").write_bytes(POLISH.encode("cp1250"))
    (docs / "de.txt").write_text(GERMAN * 30, encoding="utf-8")
    got = read_corpus(docs, [docs / "fr.txt", docs / "pl.txt", docs / "de.txt"])
    text = {d.source: d.text for d in got.docs}
    assert "forêt" in text["fr.txt"] and "Très" in text["fr.txt"] and "ŕ" not in text["fr.txt"]
    assert "Litwo! Ojczyzno moja!" in text["pl.txt"] and "Częstochowy" in text["pl.txt"]
    assert set(got.encodings) == {"fr.txt", "pl.txt"}  # UTF-8 needs no note
    assert got.encodings["fr.txt"]["encoding"] == "cp1252"
    assert got.encodings["pl.txt"]["encoding"] == "cp1250"
    assert all(e["confidence"] == "high" for e in got.encodings.values())

    overrides = [
        "model._target_=tests.helpers.fake_backend.Backend",
        f"corpus.dir={docs}",
        "corpus.train_files=[fr.txt,de.txt]",
        "corpus.val_files=[pl.txt]",
        "keywords=none",
        "chunking=small",
        "num_rows=2",
    ]
    s = pipeline.run(compose(overrides), tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))
    assert saved["splits"]["train"]["encodings"]["fr.txt"]["encoding"] == "cp1252"
    assert saved["splits"]["val"]["encodings"]["pl.txt"]["encoding"] == "cp1250"
    assert s["splits"]["val"]["encodings"]["pl.txt"]["runner_up"]["encoding"]
    rows = json.loads((tmp_path / "run" / "val.json").read_text(encoding="utf-8"))
    assert rows and all("ę" in r["doc"] or "ą" in r["doc"] or "ł" in r["doc"] for r in rows)


def test_corpus_encoding_is_checked_and_forced(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^corpus.encoding: unknown encoding 'klingon'"):
        check(compose(["corpus.encoding=klingon"]))
    with pytest.raises(ConfigError, match="^corpus.leak: must be drop, warn or fail"):
        check(compose(["corpus.leak=maybe"]))
    docs = tmp_path / "d"
    docs.mkdir()
    (docs / "a.txt").write_bytes("Très à la forêt".encode("latin-1"))
    got = read_corpus(docs, [docs / "a.txt"], encoding="cp1250")
    assert got.docs[0].text == "Trčs ŕ la foręt"  # forced, as asked (and reported as such)
    assert got.encodings["a.txt"]["confidence"] == "exact"
    (docs / "b.txt").write_text("Très à la forêt", encoding="utf-8")
    utf = read_corpus(docs, [docs / "b.txt"], encoding="cp1252")  # forced, though UTF-8
    assert utf.docs[0].text == "Très à la forêt".encode().decode("cp1252")  # mojibake
    assert "valid UTF-8, read as cp1252 as corpus.encoding says" in utf.notes["b.txt"]
    bad = read_corpus(docs, [docs / "a.txt"], encoding="utf-8")
    assert bad.skipped and "cannot decode: not valid utf-8" in bad.skipped[0].reason
