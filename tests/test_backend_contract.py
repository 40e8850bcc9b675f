"""The backend contract (synthgen/backends/base.py): every backend is a BaseBackend, every
engine an Engine, and what a backend leaves out has a default the pipeline can call."""

from __future__ import annotations

import importlib

import pytest

from synthgen import backends
from synthgen.backends.base import BaseBackend, Engine, GenParams, ModelSpec


def test_every_backend_and_the_fake_are_base_backends() -> None:
    from tests import fake_backend

    names = backends.available()
    assert names == ["transformers", "unsloth"]  # helpers and engines are not backends
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
