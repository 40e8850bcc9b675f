"""The shipped prompt configs: the notebook's wording kept, and prefix-ordered for reuse.

A chunk's question and answer prompts must begin with the same text (system text, then the
chunk), so the answer's prefill reuses the chunk's KV cache: vLLM's prefix caching and the
continuous engine's slot reuse both match prompt beginnings token by token.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from synthgen.generate import prompting
from tests.conftest import REPO, compose

# The notebook's two prompt_template strings (/work/shared/notebook/, generate_queries and
# generate_answers), verbatim: indentation, the blog's line-break hyphens and trailing spaces.
NOTEBOOK_QUESTION = """Context information is below.
    
    ---------------------
    {context_str}
    ---------------------
    
    Given the context information and not prior knowledge. generate only questions based on the be-low query.
    
    You are a Teacher/ Professor. Your task is to setup only one question for an upcoming quiz/examination. 
    The question should be diverse in nature across the document. Restrict the questions to the context information provided.
    Do not use phrases such as 'according to the context' because the context will not revealed to oth-ers.
    AGAIN, you should write only one question.
    """  # noqa: E501, W291, W293
NOTEBOOK_ANSWER = """Context information is below.
    
    ---------------------
    {context_str}
    ---------------------
    
    Also, question is given below
    
    ---------------------
    {question_str}
    ---------------------
    
    Given the context information and not prior knowledge, you should answer above question.   
    The answer should be diverse in nature across the document. Restrict the answer to the context in-formation provided.
    Do not use phrases such as 'according to the context' because the context will not revealed to oth-ers.
    """  # noqa: E501, W291, W293
# conf/prompt/notebook.yaml's header: placeholders renamed, indentation removed, hyphens mended
MENDS = {"be-low": "below", "oth-ers": "others", "in-formation": "information"}

CHUNK = "The director shot the film handheld.\nCritics called it careless; audiences did not."
QUESTION = "Why does the camera shake?"
PROMPTS = sorted(p.stem for p in (REPO / "conf" / "prompt").glob("*.yaml"))


def notebook_lines(template: str) -> list[str]:
    text = template.replace("{context_str}", CHUNK).replace("{question_str}", QUESTION)
    for a, b in MENDS.items():
        text = text.replace(a, b)
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


@pytest.mark.parametrize("name", ["notebook", "questions_only"])
def test_rendered_prompts_hold_every_line_of_the_notebooks_prompts(name: str) -> None:
    pr = compose([f"prompt={name}"]).prompt
    rendered = prompting.question_prompt(pr.question, CHUNK)
    got = [ln.strip() for ln in rendered.splitlines() if ln.strip()]
    assert got == notebook_lines(NOTEBOOK_QUESTION)  # the same lines, in the same order
    if pr.answer is not None:
        rendered = prompting.answer_prompt(pr.answer, CHUNK, QUESTION)
        got = [ln.strip() for ln in rendered.splitlines() if ln.strip()]
        assert got == notebook_lines(NOTEBOOK_ANSWER)


def chat(pr, user: str, system_role: bool) -> str:
    """A stand-in chat template: each turn's role, then its text (what every template does)."""
    return "".join(
        f"<{m['role']}>{m['content']}</{m['role']}>"
        for m in prompting.messages(pr.get("system"), user, system_role)
    )


@pytest.mark.parametrize("system_role", [True, False])
@pytest.mark.parametrize("name", PROMPTS)
def test_question_and_answer_prompts_share_system_text_and_chunk_first(
    name: str, system_role: bool
) -> None:
    pr = compose([f"prompt={name}"]).prompt
    if pr.answer is None:
        pytest.skip(f"prompt={name} has no answer stage")
    first_user = prompting.question_prompt(pr.question, CHUNK)
    later_user = prompting.question_prompt(pr.question, CHUNK, pr.get("followup"), [QUESTION])
    answer = chat(pr, prompting.answer_prompt(pr.answer, CHUNK, QUESTION), system_role)
    chunk_end = answer.index(CHUNK) + len(CHUNK)
    for user in (first_user, later_user):  # the 2nd+ question's followup text comes last
        question = chat(pr, user, system_role)
        assert len(os.path.commonprefix([question, answer])) >= chunk_end, name
    assert later_user.startswith(first_user)  # a follow-up question starts as the first one


def test_prefix_holds_in_tokens_with_a_real_tokenizer(tiny_model: Path) -> None:
    """BPE may merge across the end of the shared text: at most a token or two differ there."""
    from synthgen.backends.base import ModelSpec, encode, load_tokenizer

    tok = load_tokenizer(ModelSpec(name_or_path=str(tiny_model)))
    for name in PROMPTS:
        pr = compose([f"prompt={name}"]).prompt
        if pr.answer is None:
            continue
        system = pr.get("system")
        q = encode(tok, prompting.messages(system, prompting.question_prompt(pr.question, CHUNK)))
        a = encode(
            tok, prompting.messages(system, prompting.answer_prompt(pr.answer, CHUNK, QUESTION))
        )
        same = [x == y for x, y in zip(q, a, strict=False)]
        shared = same.index(False) if False in same else len(same)
        text = tok.decode(a[:shared])
        assert CHUNK.split()[-1] in text, f"{name}: only {shared} tokens shared"


def test_the_readme_commands_of_rows_per_hour_compose_and_pass_the_checks() -> None:
    import shlex

    from synthgen.config import check
    from tests.helpers.docs import section

    text = section("docs/speed.md", "Rows per hour")
    commands = [ln for ln in text.splitlines() if ln.startswith("python run.py ")]
    assert len(commands) == 3
    for line in commands:
        cfg = compose(shlex.split(line)[2:])
        check(cfg)
    assert {compose(shlex.split(c)[2:]).prompt.name for c in commands[:2]} == {
        "notebook_questions",
        "qa_pair",
    }
