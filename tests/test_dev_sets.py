"""The retrieval dev sets of benchmarks/data (human queries over FAQ answers): their files agree
with each other and with their READMEs, and no question title is left in any document."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "benchmarks" / "data"
sys.path.insert(0, str(DATA))

import devset  # noqa: E402


def builder(name: str):
    spec = importlib.util.spec_from_file_location(f"build_{name}", DATA / name / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_folder_is_named() -> None:
    folders = sorted(p.name for p in DATA.iterdir() if (p / "queries.jsonl").exists())
    assert folders == sorted(devset.NAMES)


@pytest.mark.parametrize("name", devset.NAMES)
def test_queries_and_documents_agree(name: str) -> None:
    d = devset.load(name)
    assert d.queries and d.docs
    assert all(set(q) == {"query", "doc", "id"} and q["query"].strip() for q in d.queries)
    assert {q["doc"] for q in d.queries} == set(d.docs)  # every doc answers exactly one query
    assert len({q["doc"] for q in d.queries}) == len(d.queries)
    assert all(t.strip() for t in d.docs.values())
    assert len({q["id"] for q in d.queries}) == len(d.queries)


@pytest.mark.parametrize("name", devset.NAMES)
def test_no_title_left_in_a_document(name: str) -> None:
    d = devset.load(name)
    titles = {q["query"].strip() for q in d.queries}
    for q in d.queries:
        assert q["query"] not in d.docs[q["doc"]], (q["doc"], q["query"])
    for doc, text in d.docs.items():
        lines = {line.strip() for line in text.splitlines()}
        assert not lines & titles, (doc, lines & titles)


@pytest.mark.parametrize("name", devset.NAMES)
def test_counts_match_the_readme(name: str) -> None:
    d = devset.load(name)
    readme = (DATA / name / "README.md").read_text(encoding="utf-8")
    m = re.search(r"\| pairs \(queries, documents\) \| (\d+)", readme)
    assert m and int(m.group(1)) == len(d.queries) == len(d.docs)
    chars = re.search(r"max [\d,]+; ([\d,]+) in all", readme)
    assert chars and int(chars.group(1).replace(",", "")) == sum(map(len, d.docs.values()))
    assert list(DATA.glob(f"{name}/LICENSE*.txt")), "the licence text ships with the set"
    assert ("UNSEEN" in readme) == (name in devset.UNSEEN)


def test_first_n_documents_keep_their_queries() -> None:
    d = devset.load("python_faq").first(3)
    assert list(d.docs) == ["001.txt", "002.txt", "003.txt"]
    assert {q["doc"] for q in d.queries} == set(d.docs)


def test_pod_formatting_codes_as_perldoc_shows_them() -> None:
    codes = builder("perlfaq").codes
    assert codes("Use C<sort> or B<I<both>>.") == "Use sort or both."
    assert codes("C<< $a->b >> and C<<< <$fh> >>>") == "$a->b and <$fh>"
    assert codes("E<lt>E<lt>HERE and E<gt>file X<here-doc>") == "<<HERE and >file "
    assert codes('L<perlfunc/"split"> L<the docs|perlop> L<perlre>') == (
        '"split" in perlfunc the docs perlre'
    )
    assert codes("L<https://www.cpan.org/>") == "https://www.cpan.org/"


def test_pod_heads_and_their_text(tmp_path: Path) -> None:
    pod = tmp_path / "x.pod"
    pod.write_text(
        "=head1 NAME\n\nintro\n\n=head2 How do I C<x>?\n\nFirst\nline.\n\n    code  here\n\n\n"
        "=over 4\n\n=item *\n\nbullet\n\n=item Label\n\ntext\n\n=back\n\n"
        "=head2 Next?\n\nAnswer.\n\n=head1 AUTHOR\n\nme\n",
        encoding="utf-8",
    )
    assert builder("perlfaq").pairs_of(pod) == [
        ("How do I x?", "First line.\n\n    code  here\n\nbullet\n\nLabel\n\ntext"),
        ("Next?", "Answer."),
    ]


def test_curl_faq_numbered_questions() -> None:
    text = (
        "FAQ\n\n 1. Basics\n  1.1 What is it?\n  1.2 Why?\n\n 2. More\n  2.1 How?\n\n"
        + "=" * 40
        + "\n\n1. Basics\n\n  1.1 What is it?\n\n  A tool.\n\n  1. a list item\n\n"
        "  1.2 Why? (as the body says)\n\n  Because.\n\n2. more\n\n  2.1 How?\n\n    code\n"
    )
    assert builder("curl_faq").pairs_of(text) == [
        ("1.1", "What is it?", "A tool.\n\n1. a list item"),
        ("1.2", "Why?", "Because."),
        ("2.1", "How?", "code"),
    ]
