"""The backend contract (synthgen/backends/base.py): every backend is a BaseBackend, every
engine an Engine, and what a backend leaves out has a default the pipeline can call."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from synthgen import backends
from synthgen.backends.base import BaseBackend, Engine, GenParams, ModelSpec, Usage, encode


def test_every_backend_and_the_fake_are_base_backends() -> None:
    from tests.helpers import fake_backend

    names = backends.available()
    assert names == ["openai", "transformers", "unsloth"]  # helpers and engines are not backends
    for name in names:
        cls = importlib.import_module(f"synthgen.backends.{name}").Backend
        assert issubclass(cls, BaseBackend) and cls.name == name
    assert issubclass(fake_backend.Backend, BaseBackend)


def test_every_engine_has_generate_and_close() -> None:
    from synthgen.backends.batched import Batched
    from synthgen.backends.continuous import SlotEngine
    from synthgen.backends.vllm_engine import VllmRunner

    for cls in (Batched, SlotEngine, VllmRunner):
        assert issubclass(cls, Engine), cls


def test_defaults_of_a_backend_that_only_generates() -> None:
    class Minimal(BaseBackend):
        def __init__(self, **kwargs: object) -> None:
            super().__init__(ModelSpec.from_kwargs(kwargs))
            self.tokenizer = None

    a, b = Minimal(name_or_path="m"), Minimal(name_or_path="m")
    a.notes.append("x")
    assert b.notes == [] and b.choices == {}  # per instance, not shared
    assert a.streamer(4) is None and a.auto_batch_size(256, 1024) == 8
    assert Minimal.prepare(a.spec) == "m" and Minimal.check(a.spec) is None
    a.reserve_new = 300  # what the pipeline sets before the first batch
    assert BaseBackend.reserve_new == 256
    a.set_seed(0)
    a.close()
    with pytest.raises(NotImplementedError, match="Minimal.generate"):
        a.generate([[1]], GenParams())


def test_the_prompt_hooks_a_local_backend_gets_and_the_endpoint_overrides() -> None:
    """encode (token ids through the chat template / the messages as sent), attach (the
    progress bar; an endpoint shows its cost there) and usage (a server's counts, else None)."""
    from synthgen.backends.openai import Backend as Endpoint
    from tests.helpers.fake_backend import Backend as Fake

    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Ask."}]
    local = Fake(name_or_path="m")
    assert local.encode(msgs, "question") == encode(local.tokenizer, msgs, local.spec, "question")
    assert local.usage is None
    local.attach(object())  # nothing to show: a no-op

    class Bar:
        desc = ""

        def set_description(self, desc: str, refresh: bool = True) -> None:
            self.desc = desc

    spec = {"name_or_path": "m", "name": "m", "backend": "openai", "price_per_1m_input": 1.0}
    e = Endpoint(**spec, price_per_1m_output=3.0, base_url="http://127.0.0.1:9/v1")
    try:
        sent = e.encode(msgs, "question")
        assert sent == msgs and sent[0] is not msgs[0]  # a copy: the request owns it
        bar = Bar()
        e.attach(bar)
        e.count({"prompt_tokens": 1000, "completion_tokens": 100, "cached_tokens": 0})
        assert e.usage is not None and e.usage.to_dict()["cost_usd"] == 0.0013
        assert bar.desc == "generate $0.0013"
    finally:
        e.close()


def test_usage_adds_up_over_the_sessions_that_have_it() -> None:
    a = Usage(requests=2, prompt_tokens=10, completion_tokens=4, price_per_1m_input=1.0)
    a.price_per_1m_output = 2.0
    b = Usage(requests=1, failed=1, retries=3, prompt_tokens=5, completion_tokens=1)  # no prices
    sessions = [{"usage": a.to_dict()}, {"output_tokens": 7}, {"usage": b.to_dict()}]
    total = Usage.total(sessions)
    assert total == {
        "requests": 3,
        "failed": 1,
        "retries": 3,
        "prompt_tokens": 15,
        "completion_tokens": 5,
        "cached_tokens": 0,
        "cost_usd": round((10 * 1.0 + 4 * 2.0) / 1e6, 6),  # the priced session's own cost
    }
    assert Usage.total([{"output_tokens": 7}]) is None  # a local model's run: no usage


def test_the_registry_names_each_backend_with_its_own_spec() -> None:
    """backends.BACKENDS: model.backend -> its class; each class's Spec holds only its keys
    (a model loaded here: weights and template; a served one: the endpoint and its prices)."""
    from synthgen.backends.base import BaseSpec, EndpointSpec

    for name, cls in backends.BACKENDS.items():
        assert cls.name == name and issubclass(cls.Spec, BaseSpec)
    assert backends.BACKENDS["openai"].Spec is EndpointSpec
    assert backends.BACKENDS["transformers"].Spec is ModelSpec
    assert backends.BACKENDS["unsloth"].Spec is ModelSpec
    assert "base_url" not in {f.name for f in dataclasses.fields(ModelSpec)}
    assert "chat_template" not in {f.name for f in dataclasses.fields(EndpointSpec)}


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (
            ["+model.base_url=http://h/v1"],
            "model.base_url: not a key of model.backend=transformers",
        ),
        (["model=gpt4o_mini", "+model.chat_template=x"], "model.chat_template: not a key of"),
        (["model=gpt4o_mini", "+model.load_in_4bit=true"], "model.load_in_4bit: not a key of"),
    ],
)
def test_a_key_of_another_backend_is_refused_naming_it(overrides: list[str], says: str) -> None:
    from synthgen.config import check
    from synthgen.errors import ConfigError
    from tests.conftest import compose

    with pytest.raises(ConfigError) as e:
        check(compose([*overrides, "dry_run=true"]))
    assert str(e.value).startswith(says) and "\n" not in str(e.value), str(e.value)
