"""The Unsloth backend on the transformers backend's public hooks, without unsloth or a GPU.

A fake `unsloth` package stands in for the real one (GPU only): FastLanguageModel loads the
tiny model with transformers, get_chat_template records the template name it was asked for.
What is checked is synthgen's side: which hook loads what, that the chat template goes
through the one chat-template function, and that rows come out of the shared engines.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from types import SimpleNamespace

import pytest

from synthgen.backends.base import BaseBackend, GenParams, encode

TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}"


@pytest.fixture
def fake_unsloth(monkeypatch: pytest.MonkeyPatch, tiny_model: Path) -> SimpleNamespace:
    seen = SimpleNamespace(loads=[], templates=[], inference=0)

    class FastLanguageModel:
        @staticmethod
        def from_pretrained(model_name: str, **kw: object) -> tuple[object, object]:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            seen.loads.append(kw)
            model = AutoModelForCausalLM.from_pretrained(model_name)
            if kw.get("fast_inference"):
                model.fast_generate = lambda *a, **k: []  # no vllm_engine: waves only
            return model, AutoTokenizer.from_pretrained(model_name)

        @staticmethod
        def for_inference(model: object) -> None:
            seen.inference += 1

    def get_chat_template(tokenizer: object, chat_template: str) -> object:
        seen.templates.append(chat_template)
        tokenizer.chat_template = TEMPLATE
        return tokenizer

    pkg = types.ModuleType("unsloth")
    pkg.FastLanguageModel = FastLanguageModel
    templates = types.ModuleType("unsloth.chat_templates")
    templates.get_chat_template = get_chat_template
    pkg.chat_templates = templates
    monkeypatch.setitem(sys.modules, "unsloth", pkg)
    monkeypatch.setitem(sys.modules, "unsloth.chat_templates", templates)

    from synthgen.backends import unsloth

    # the real check wants unsloth installed and CUDA; this test runs the rest on the CPU
    monkeypatch.setattr(unsloth.Backend, "check", staticmethod(lambda spec, runtime=True: None))
    seen.Backend = unsloth.Backend
    seen.spec = {"name_or_path": str(tiny_model), "dtype": "float32", "chat_template": "chatml"}
    return seen


def test_dynamic_loads_through_unsloth_with_its_template_and_generates(fake_unsloth) -> None:
    b = fake_unsloth.Backend(engine="dynamic", **fake_unsloth.spec)
    assert isinstance(b, BaseBackend) and b.engine == "dynamic"
    assert len(fake_unsloth.loads) == 1 and fake_unsloth.inference == 1  # Unsloth's loader
    assert fake_unsloth.templates == ["chatml"]  # the template name went to unsloth
    assert b.tokenizer.chat_template == TEMPLATE and b.tokenizer.padding_side == "left"
    assert b.attention() == "sdpa"  # Unsloth's own generate patches attention itself
    ids = encode(b.tokenizer, [{"role": "user", "content": "the long take"}], b.spec)
    (out,) = b.generate([ids], GenParams(max_new_tokens=4))
    assert out.tokens == 4 and not out.finished
    b.close()


def test_static_loads_with_transformers_and_the_same_template(fake_unsloth) -> None:
    b = fake_unsloth.Backend(engine="static", **fake_unsloth.spec)
    assert fake_unsloth.loads == [] and fake_unsloth.inference == 0  # transformers loaded it
    assert fake_unsloth.templates == ["chatml"]  # through use_chat_template all the same
    assert b.tokenizer.chat_template == TEMPLATE
    b.close()


def test_vllm_hook_takes_unsloths_fast_generate_in_waves(fake_unsloth) -> None:
    b = fake_unsloth.Backend(engine="dynamic", **fake_unsloth.spec)
    tokenizer, runner = b.load_vllm()  # what engine=vllm calls on a GPU
    assert fake_unsloth.loads[-1]["fast_inference"] is True
    assert runner.feed == "waves" and runner.streamer() is None
    assert b.notes[-1] == "Unsloth gave model.fast_generate only: fed in waves"
    assert tokenizer.chat_template == TEMPLATE
    b.close()
