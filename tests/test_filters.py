"""The quality gates (synthgen/gates/filters.py): each gate on cases it must drop and must keep, the
human-written pairs of tests/data/human_qa (>= 97% kept), and the Gemma 3 270M rows of issue 13
(all dropped), with the notebook prompt and chunks of the sample corpus."""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from pathlib import Path

import pytest

from synthgen.errors import ConfigError
from synthgen.gates import filters
from tests.conftest import REPO, compose

HUMAN = REPO / "tests" / "data" / "human_qa" / "human_qa.jsonl"
PROMPTS = sorted(p.stem for p in (REPO / "conf" / "prompt").glob("*.yaml"))


def gates(*overrides: str) -> filters.Gates:
    cfg = compose(list(overrides))
    return filters.Gates(cfg, cfg.prompt)


@lru_cache(maxsize=1)
def film_chunks() -> list[str]:
    """Chunks of the sample corpus's text files, read and cut by the pipeline's own stages
    (chunking=small: 256 tokens, kept between 400 and 1,400 characters)."""
    from synthgen.corpus import chunking, reading, selection

    folder = REPO / "data" / "movies"
    files = sorted([*folder.glob("*.txt"), *folder.glob("*.md")])
    docs, _, _ = reading.read_files(folder, files)
    kept, _ = selection.select(chunking.chunk_docs(docs, 256, 32), 400, 1400, [], "word")
    return [c.text for c in kept]


CHUNK = (
    "The director shot the whole film with a handheld camera, so every scene trembles a little. "
    "Critics first called it careless, but the shaking frame keeps the audience inside the panic "
    "of the characters, and the chase on the staircase feels breathless."
)


# --- one gate at a time --------------------------------------------------------------------------


def test_prompt_echo_counts_the_templates_words_not_the_chunks() -> None:
    g = filters.PromptEcho(["Context: {context}\nWrite one question about the film."], 4, 0.5)
    assert g.check("Write one question about the film.", CHUNK).reason == "prompt_echo"
    assert g.check("Write one question about the film. Write one.", CHUNK).score == 0.6
    assert g.check("Why does every scene of the film tremble?", CHUNK) is None
    # the n-grams that the chunk shares with the template are the chunk's wording
    chunk = CHUNK + " Write one question about the film, the critic said."
    assert g.check("Write one question about the film.", chunk) is None
    # no n-gram spans a placeholder: "context write one question" is not template text
    assert filters.PromptEcho(["{context} write"], 2, 0.0).check("context write", CHUNK) is None


def test_repetition_drops_repeated_sentences_and_looping_ngrams() -> None:
    g = filters.Repetition(max_sentence_repeats=1, ngram=4, max_share=0.4)
    d = g.check("The question should be 100% correct. The question should be 100% correct.", "")
    assert (d.reason, d.score, d.threshold) == ("repeated_sentence", 2, 1)
    d = g.check("What does the film do and what does the film do and what does the film do", "")
    assert d.reason == "repeated_ngrams" and d.score > 0.9
    assert g.check("What does the film do, and why does the critic like it?", "") is None
    # the Python FAQ (tests/data/human_qa): "elif" twice is no repeated sentence of 3+ words
    human = (
        "You can do this easily enough with a sequence of if... elif... elif... else. For literal "
        "values, or constants within a namespace, you can also use a match ... case statement."
    )
    assert g.check(human, "").reason == "repeated_sentence"  # every piece counts by default
    assert filters.Repetition(1, 4, 0.4, min_sentence_words=3).check(human, "") is None
    assert gates().answer(human, human) is None  # conf/filters/default.yaml: 3 words
    d = filters.Repetition(1, 4, 0.4, min_sentence_words=3).check("No way at all. " * 2, "")
    assert (d.reason, d.detail) == ("repeated_sentence", "no way at all")


def test_repetition_drops_a_piece_looping_inside_one_word() -> None:
    """Gemma 3 270M, prompt=two_facts, the curses HOWTO: one \\w+ word to the n-gram check."""
    loop = 'What is the difference between a "key" and a "' + "key_" * 16 + 'key"?'
    assert filters.Repetition(1, 4, 0.4).check(loop, "") is None  # off unless max_unit_repeats
    d = filters.Repetition(1, 4, 0.4, max_unit_repeats=4).check(loop, "")
    assert (d.reason, d.score, d.threshold, d.detail) == ("repeated_chars", 16, 4, "key_")
    assert gates().question(loop, loop).reason == "repeated_chars"  # on by default
    for fine in ("0.1 + 0.2 == 0.30000000000000004", "x = 2**99999999999", "fill __________ in"):
        assert gates().answer(fine, fine) is None  # numbers and rules are no loops
    assert gates().answer("ha ha ha ha ha ha", "ha ha ha ha ha ha").reason == "repeated_chars"


@pytest.mark.parametrize(
    ("text", "signals"),
    [
        ("How do you remove multiple items from a list", 1),  # no '?' (the Python FAQ has it)
        ("In what year was the film released?", 2),
        ("The film's ending: was it a dream after all?", 2),
        ("The film's ending, a dream?", 1),
        ("Did the critics like the film?", 2),
        ("これは何ですか？", 1),  # not English: the '?' is all that can be checked
    ],
)
def test_questions_pass_with_a_mark_or_an_interrogative_form(text: str, signals: int) -> None:
    assert filters.NotQuestion(1).check(text, "") is None
    strict = filters.NotQuestion(2).check(text, "")
    assert (strict is None) == (signals == 2 or not filters.looks_english(filters.words(text)))


@pytest.mark.parametrize(
    "text",
    [
        "The question should be 100 words or less.",
        "You should not use the word 'and' or 'but' in the question.",
        "Explain the role of the soundtrack",
        "これは本です。",
    ],
)
def test_statements_are_not_questions(text: str) -> None:
    d = filters.NotQuestion(1).check(text, "")
    assert d is not None and (d.reason, d.score, d.threshold) == ("not_question", 0, 1)


META = [
    "What does the passage say about the handheld camera?",
    "According to the text, why does every scene tremble?",
    "Why, as mentioned above, does the frame shake?",
    "What did critics call the film in the given text?",
    "What does this study show about the camera?",
    "What is the purpose of the following command?",  # Gemma 3 270M on the Python HOWTOs
]
NOT_META = [
    "What was the context of the Cold War?",  # "the context of": a topic, not the chunk
    "Who passed the text of the treaty to the king?",
    "Why does every scene of the film tremble?",
    "Which command follows the cut in the editing room?",
]


@pytest.mark.parametrize(
    ("text", "drop"), [(t, True) for t in META] + [(t, False) for t in NOT_META]
)
def test_meta_references(text: str, drop: bool) -> None:
    d = gates().question(text, CHUNK)
    assert (d is not None and d.reason == "meta_reference") == drop, d


REFUSALS = [
    "The context does not mention who directed the film.",
    "I cannot answer this question from the information given.",
    "The director's name is not mentioned in the passage.",
    "I'm sorry, but there is not enough information to answer.",
]


@pytest.mark.parametrize("text", REFUSALS)
def test_refusals_are_dropped(text: str) -> None:
    assert gates().answer(text, CHUNK, "Who directed the film?").reason == "refusal"


def test_an_answer_that_says_no_is_no_refusal() -> None:
    answer = "The director does not use a tripod: the whole film is handheld."
    assert gates().answer(answer, CHUNK, "Did the director use a tripod?") is None


def test_length_bounds_in_words() -> None:
    g = filters.Length(3, 5)
    assert g.check("Why?", "") == filters.Drop("too_short", 1, 3)
    assert g.check("one two three four five six", "") == filters.Drop("too_long", 6, 5)
    assert g.check("Why does it shake?", "") is None


def test_length_counts_only_pieces_with_a_letter_or_digit() -> None:
    g = filters.Length(1, 5)
    assert g.check("----------------", "") == filters.Drop("too_short", 0, 1)  # the prompt's rule
    assert g.check("-- 42 --", "") is None
    assert gates().answer("---------------------", "A pad is a window.").reason == "too_short"


def test_lexical_grounding() -> None:
    g = filters.LexicalGrounding(min_overlap=0.5, min_content_words=1)
    assert g.check("The staircase chase feels breathless.", CHUNK) is None  # stems: chase, feel
    d = g.check("The composer recorded an orchestral score in Vienna.", CHUNK)
    assert d.reason == "ungrounded" and d.score < 0.2
    assert g.check("Yes.", CHUNK) is None  # nothing to check
    # only the chunk counts: restating an off-topic question does not ground an answer
    q = "What is the probability that a student will score a 100% on a test?"
    a = "The probability that a student will score a 100% on a test is 0.0000000000000"
    assert g.check(a, CHUNK, q).score == 0.0
    # questions are checked against the chunk too (grounding.questions)
    assert gates().question(q, CHUNK).reason == "ungrounded"
    assert gates().question("Why does every scene of the film tremble?", CHUNK) is None


# the Socket Programming HOWTO (Python 3.11 docs, PSF License: tests/data/human_qa/LICENSE-PSF.txt)
SOCKETS = (
    "Part of the trouble with understanding these things is that \u201csocket\u201d can mean a "
    "number of subtly different things, depending on context. So first, let\u2019s make a "
    "distinction between a \u201cclient\u201d socket - an endpoint of a conversation, and a "
    "\u201cserver\u201d socket, which is more like a switchboard operator."
)


def test_frame_words_neither_ground_nor_count() -> None:
    """Gemma 3 270M's questions on the Python HOWTOs (issue 13): the notebook prompt's quiz
    played back is grounded by "first" alone unless frame words stop counting."""
    role_play = "What is the name of the student who is the first to answer the question correctly?"
    plain = filters.LexicalGrounding(0.1, 1)
    framed = filters.LexicalGrounding(0.1, 1, ["name", "first", "purpose"])
    assert plain.check(role_play, SOCKETS) is None  # 1 of 6 content words: "first"
    d = framed.check(role_play, SOCKETS)
    assert (d.reason, d.score) == ("ungrounded", 0.0)  # student, answer, question, correctly
    assert gates().question(role_play, SOCKETS).reason == "ungrounded"  # the default list
    assert gates().question("What is the purpose of a socket?", SOCKETS) is None  # "socket"
    assert framed.check("What is the purpose?", SOCKETS) is None  # nothing left to check
    off = gates("filters.grounding.frame_words=null").question(role_play, SOCKETS)
    assert off is None  # null: every content word counts, as before the list


class BagOfWords:
    """A stand-in embedder: one dimension per word of a fixed list, normalized."""

    vocab = ("camera", "scene", "critic", "score", "music", "orchestra")

    def encode(self, texts, normalize_embeddings=True, convert_to_numpy=True):
        import numpy as np

        v = np.array([[float(w in t.lower()) for w in self.vocab] for t in texts]) + 1e-9
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_embedding_grounding_loads_its_model_on_first_use() -> None:
    loads = []
    g = filters.EmbeddingGrounding(lambda: loads.append(1) or BagOfWords(), 0.5)
    assert loads == []
    assert g.check("The camera shakes in every scene.", CHUNK) is None
    d = g.check("The orchestra recorded the score and music.", CHUNK)
    assert d.reason == "ungrounded_embedding" and d.score < 0.5
    assert loads == [1] and len(g.chunks) == 1  # one load, the chunk embedded once


def test_embedding_gate_with_a_real_embedder(tiny_embedder: Path) -> None:
    cfg = compose(["filters.grounding.embedding=true", f"embedder.name_or_path={tiny_embedder}"])
    g = filters.Gates(cfg, cfg.prompt)
    emb = next(x for x in g.answers if isinstance(x, filters.EmbeddingGrounding))
    assert emb.model is None  # nothing loaded to build the gates (config checks, dry runs)
    assert g.answer(CHUNK, CHUNK, "Why does it tremble?") is None  # the chunk itself: cosine 1
    assert emb.model is not None


def test_near_duplicate_answers_across_chunks() -> None:
    g = filters.NearDuplicateAnswers(ngram=3, max_similarity=0.8, min_words=8)
    a = "The answer should be diverse in nature across the document and its parts."
    assert g.check(a, "train", "c1") is None
    g.add(a, "train", "c1")
    assert g.check(a, "train", "c1") is None  # the same chunk: another question about it
    d = g.check(a, "train", "c2")
    assert (d.reason, d.score, d.detail) == ("near_duplicate_answer", 1.0, "chunk c1")
    assert g.check(a.replace("parts", "sections"), "train", "c3").score >= 0.8
    assert g.check(a, "val", "c9") is None  # splits are apart
    assert g.check("In 1990.", "train", "c4") is None  # short facts repeat legitimately
    assert (
        g.check("The critics praised the handheld camera of the staircase chase.", "train", "c5")
        is None
    )


def test_gates_config_errors_name_their_key() -> None:
    from synthgen.config import check

    with pytest.raises(ConfigError, match=r"^filters.prompt_echo.max_share: must be a number in"):
        check(compose(["filters.prompt_echo.max_share=2"]))
    with pytest.raises(ConfigError, match=r"^filters.refusal.patterns: bad regular expression"):
        check(compose(["filters.refusal.patterns=['(unclosed']"]))
    with pytest.raises(ConfigError, match=r"^filters.not_question.min_signals"):
        check(compose(["filters.not_question.min_signals=3"]))
    with pytest.raises(ConfigError, match=r"^filters.repetition.max_unit_repeats: must be a num"):
        check(compose(["filters.repetition.max_unit_repeats=-1"]))
    with pytest.raises(ConfigError, match=r"^filters.grounding.frame_words: must be a list of wo"):
        check(compose(["filters.grounding.frame_words=name"]))


def quality_gates_commands() -> list[list[str]]:
    """The `python run.py ...` lines of the "Quality gates" and "Re-gating a finished run"
    sections of docs/quality.md (comments cut)."""
    import shlex

    from tests.helpers.docs import section

    text = section("docs/quality.md", "Quality gates")
    text += "\n" + section("docs/quality.md", "Re-gating a finished run")
    out = []
    for line in text.splitlines():
        if line.startswith("python run.py"):
            out.append(shlex.split(line.split("  #")[0])[2:])
    return out


def test_the_readmes_gate_commands_compose_and_pass_the_checks() -> None:
    from synthgen.config import check

    cmds = quality_gates_commands()
    assert len(cmds) == 5 and ["filters=strict"] in cmds and ["filters=none"] in cmds
    for args in cmds:
        if args and args[0] == "task=filter":
            continue  # run for real in tests/test_refilter.py
        check(compose(args))
    tuned = compose(cmds[3])
    assert tuned.filters.grounding.min_overlap == 0.3 and tuned.filters.meta_reference.answers


def test_none_runs_no_gate_and_one_gate_can_be_turned_back_on() -> None:
    assert not gates("filters=none").active
    g = gates("filters=none", "filters.enabled=true", "filters.refusal.enabled=false")
    assert g.active and not any(
        isinstance(x, filters.Phrases) and x.reason == "refusal" for x in g.answers
    )
    assert filters.Gates({}, None).name == "none"  # a config from before the gates existed


# --- measured: human pairs keep, the 270M's rows go ----------------------------------------------


def human_pairs() -> list[dict]:
    return [json.loads(x) for x in HUMAN.read_text(encoding="utf-8").splitlines()]


def run_human(g: filters.Gates) -> tuple[int, Counter[str]]:
    """(pairs, drops per 'id stage:reason'); each passage is a chunk of split 'train'."""
    n, drops = 0, Counter()
    for p in human_pairs():
        n += 1
        stage, d = "question", g.question(p["question"], p["passage"])
        if d is None:
            stage = "answer"
            d = g.answer(p["answer"], p["passage"], p["question"], "train", p["id"])
        if d is None:
            g.accept(p["answer"], "train", p["id"])
        else:
            drops[f"{p['id']} {stage}:{d.reason}"] += 1
    return n, drops


def test_the_human_set_is_what_its_readme_says() -> None:
    pairs = human_pairs()
    faq = "python3.11-doc:usr/share/doc/python3.11/html/faq/"
    by_page = Counter(p["source"].removeprefix(faq) for p in pairs)
    assert by_page == {
        "general.html": 23,
        "programming.html": 67,
        "design.html": 28,
        "library.html": 28,
        "extending.html": 17,
        "windows.html": 9,
        "gui.html": 4,
        "installed.html": 3,
    }
    assert len({p["id"] for p in pairs}) == len(pairs) == 179
    assert HUMAN.stat().st_size < 400_000
    for p in pairs:
        assert p["question"] and p["answer"] and len(p["passage"]) <= 2000
        assert p["passage"].startswith(p["answer"])  # the answer: the passage's first paragraph


SPHINX_FAQ = """<html><body><div class="sidebar"><h3>Navigation</h3></div>
<div class="body" role="main"><section id="faq"><h1>FAQ<a class="headerlink">¶</a></h1>
<nav class="contents"><p>Contents</p></nav>
<section id="what-is-it"><h3>What is <em>it</em>?<a class="headerlink">¶</a></h3>
<p>It is a   <code><span class="pre">thing</span></code>,
made by people.</p><div class="highlight"><pre>x = 1
</pre></div><p>More.</p></section>
<section id="code-only"><h3>Code only?</h3><div><pre>y = 2</pre></div></section>
<section id="last"><h3>Last one?</h3><ul><li><p>A list first.</p></li></ul></section>
</section></div></body></html>"""


def test_the_human_sets_extraction_rule(tmp_path: Path) -> None:
    """tests/data/human_qa/build.py on a page shaped as Sphinx writes the Python FAQ."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build", HUMAN.parent / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    page = tmp_path / "faq.html"
    page.write_text(SPHINX_FAQ, encoding="utf-8")
    items = build.entries(page)
    assert [e["question"] for e in items] == ["What is it?", "Code only?", "Last one?"]
    assert items[0]["blocks"] == [
        ("p", "It is a thing, made by people."),
        ("code", "x = 1"),
        ("p", "More."),
    ]
    assert items[1]["blocks"] == [("code", "y = 2")]  # skipped: code before any paragraph
    # short: the next entries are added, headings included
    assert build.passage(items, 0) == (
        "It is a thing, made by people.\n\nx = 1\n\nMore.\n\nCode only?\n\ny = 2"
        "\n\nLast one?\n\nA list first."
    )


@pytest.mark.parametrize("prompt", PROMPTS)
def test_human_pairs_pass_the_default_gates(prompt: str) -> None:
    n, drops = run_human(gates(f"prompt={prompt}"))
    kept = 1 - sum(drops.values()) / n
    assert kept >= 0.97, f"{kept:.1%} kept; dropped: {dict(drops)}"


@pytest.mark.slow
def test_the_readmes_gate_table_is_what_the_gates_do() -> None:
    """docs/quality-gates.md (linked from docs/quality.md "Quality gates"), each gate alone:
    human pairs kept (default, strict) and our 270M rows dropped, measured again so the table
    cannot go stale."""
    text = (REPO / "docs" / "quality-gates.md").read_text(encoding="utf-8")
    table = text.split("| gate alone |", 1)[1].split("\n\n", 1)[0]
    names = ("prompt_echo", "repetition", "refusal", "not_question", "meta_reference", "length")
    names += ("grounding", "restated_question", "near_duplicate_answer")
    rows = [json.loads(x) for x in GEMMA.read_text(encoding="utf-8").splitlines()]
    for name in (*names, "all"):
        off = [f"filters.{x}.enabled=false" for x in names if x != name and name != "all"]
        kept = [179 - sum(run_human(gates(*off, *s))[1].values()) for s in ([], ["filters=strict"])]
        g, dropped = gates("prompt=notebook", *off), 0
        for r in rows:
            d = g.question(r["question"], r["chunk"])
            if d is None:
                d = g.answer(r["answer"], r["chunk"], r["question"], r["split"], r["chunk_id"])
            if d is None:
                g.accept(r["answer"], r["split"], r["chunk_id"])
            dropped += d is not None
        label = f"`{name}`" if name != "all" else "all"
        cells = [ln.split(" | ")[1:] for ln in table.splitlines() if ln.startswith(f"| {label} |")]
        assert len(cells) == 1, label
        assert [c.split("/")[0].strip("| ") for c in cells[0]] == [
            str(kept[0]),
            str(dropped),
            str(kept[1]),
        ], label


def test_strict_drops_more_human_pairs_than_default() -> None:
    n, default = run_human(gates())
    _, strict = run_human(gates("filters=strict"))
    assert sum(strict.values()) > sum(default.values())


# The rows of the issue's run (Gemma 3 270M base, prompt=notebook), exactly as quoted there;
# the issue cut them with "…", so each is tried as quoted and without the cut mark.
ISSUE_QUESTIONS = [
    "The question should be diverse in nature across the document. The question should be "
    "diverse in nature across the docume…",
    "The question should be 100% correct. The question should be 100% correct. …",
    "You should not use the word 'and' or 'but' in the question. …",
]
ISSUE_ANSWER = (
    "The answer should be diverse in nature across the document. Restrict the answer to the "
    "context infor…"
)


def variants(text: str) -> list[str]:
    return [text, text.rstrip("… ").strip()]


@pytest.mark.parametrize("question", [v for q in ISSUE_QUESTIONS for v in variants(q)])
def test_the_issues_270m_questions_are_all_dropped(question: str) -> None:
    g = gates("prompt=notebook")
    for chunk in film_chunks():
        assert g.question(question, chunk) is not None, chunk[:80]


@pytest.mark.parametrize("answer", variants(ISSUE_ANSWER))
def test_the_issues_270m_answer_for_nine_chunks_is_dropped_nine_times(answer: str) -> None:
    chunks = film_chunks()[:9]
    assert len(chunks) == 9
    off = ["filters.prompt_echo.enabled=false", "filters.grounding.enabled=false"]
    for overrides in ([], off):
        g = gates("prompt=notebook", *overrides)
        reasons = []
        for i, chunk in enumerate(chunks):
            d = g.answer(answer, chunk, "What is the film about?", "train", f"c{i}")
            reasons.append(d.reason if d else None)
            if d is None:
                g.accept(answer, "train", f"c{i}")
        if not overrides:
            assert reasons == ["prompt_echo"] * 9
        else:  # without echo and grounding gates, the first stays, the near-duplicate gate drops 8
            assert reasons[1:] == ["near_duplicate_answer"] * 8, reasons


GEMMA = REPO / "tests" / "data" / "gemma3_270m" / "rows.jsonl"


def test_our_own_270m_rows_are_all_dropped() -> None:
    """Every row of two real runs of Gemma 3 270M (filters=none, README of the data file)."""
    rows = [json.loads(x) for x in GEMMA.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 22
    g = gates("prompt=notebook")  # notebook_cue is the notebook prompt plus a cue word
    reasons = Counter()
    for r in rows:
        d = g.question(r["question"], r["chunk"])
        if d is None:
            d = g.answer(r["answer"], r["chunk"], r["question"], r["split"], r["chunk_id"])
        assert d is not None, r
        reasons[d.reason] += 1
    # what the defaults gave when these thresholds were set (docs/quality-gates.md)
    assert reasons == {
        "not_question": 8,
        # 6th: "What is the most important thing you learned in this course?", the quiz role
        # played back ("you learned"); before, its looping answer was a repeated_sentence
        "meta_reference": 6,
        "repeated_sentence": 3,
        "repeated_ngrams": 3,
        "prompt_echo": 2,
    }


def test_an_old_run_dirs_gates_run_as_they_did() -> None:
    """A config saved before a gate or threshold existed (rundir/upgrade.py UPGRADES): the gate
    stays off and the threshold keeps its value of then when the rows are gated again; one
    saved before the gates existed runs none."""
    from omegaconf import OmegaConf

    from synthgen.rundir.upgrade import upgrade_config

    cfg = compose()
    today = filters.Gates(cfg, cfg.prompt)
    assert any(isinstance(g, filters.RestatedQuestion) for g in today.answers)
    old = OmegaConf.to_container(cfg, resolve=True)
    del old["filters"]["restated_question"]
    del old["filters"]["repetition"]["max_unit_repeats"]
    del old["filters"]["grounding"]["frame_words"]
    up = upgrade_config(OmegaConf.create(old))
    g = filters.Gates(up, up.prompt)
    assert not any(isinstance(x, filters.RestatedQuestion) for x in g.answers)
    rep = next(x for x in g.questions if isinstance(x, filters.Repetition))
    assert rep.max_units == 0 and g.name == "default"
    del old["filters"]
    up = upgrade_config(OmegaConf.create(old))
    g = filters.Gates(up, up.prompt)
    assert not g.active and g.name == "none" == filters.name(up)
