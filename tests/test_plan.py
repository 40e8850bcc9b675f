"""What runs where: the engine choice and model.load_in_4bit=auto, from numbers and flags."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from synthgen.backends import plan
from synthgen.backends.plan import GiB, choose_4bit, choose_engine, param_count
from synthgen.config import check
from synthgen.errors import ConfigError
from tests.conftest import compose

# the published config.json of Llama-3.1-8B-Instruct, the keys that set its size
LLAMA31_8B = {
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "tie_word_embeddings": False,
}


@pytest.mark.parametrize(
    ("requested", "has_vllm", "cuda", "engine"),
    [
        ("auto", True, True, "vllm"),
        ("auto", False, True, "static"),
        ("auto", True, False, "dynamic"),  # vLLM installed on a CPU box: not usable
        ("auto", False, False, "dynamic"),
        ("static", True, True, "static"),
        ("dynamic", True, True, "dynamic"),
        ("vllm", True, True, "vllm"),
    ],
)
def test_engine_choice(requested: str, has_vllm: bool, cuda: bool, engine: str) -> None:
    got, reason = choose_engine(requested, has_vllm, cuda, "transformers")
    assert got == engine
    assert reason and "\n" not in reason
    if requested == "auto":
        assert reason.startswith("auto:")


@pytest.mark.parametrize(
    ("has_vllm", "cuda", "says"),
    [(False, True, "is not installed"), (True, False, "needs a CUDA GPU")],
)
def test_engine_vllm_without_vllm_or_cuda_says_what_is_missing(
    has_vllm: bool, cuda: bool, says: str
) -> None:
    with pytest.raises(ValueError, match=f"^engine: vllm {says}"):
        choose_engine("vllm", has_vllm, cuda, "transformers")


def test_param_count_of_llama31_8b_is_its_8_03_billion() -> None:
    n = param_count(LLAMA31_8B)
    assert abs(n - 8.03e9) < 0.01e9
    # tied embeddings drop the output head: Llama-3.2-3B is 3.21 B
    n3 = param_count(
        {
            **LLAMA31_8B,
            "hidden_size": 3072,
            "intermediate_size": 8192,
            "num_hidden_layers": 28,
            "num_attention_heads": 24,
            "tie_word_embeddings": True,
        }
    )
    assert abs(n3 - 3.21e9) < 0.01e9
    assert param_count({"hidden_size": 8}) is None  # not a decoder config


@pytest.mark.parametrize(
    ("card_gib", "four_bit"),
    [
        (139, False),  # H200: bf16
        (79, False),  # H100 80 GB
        (39, False),  # A100 40 GB: 15 GiB of weights + 15 GiB cache fit
        (23, True),  # RTX 4090 / L4-class 24 GB: the notebook's card, 4-bit
        (15, True),  # T4 16 GB
    ],
)
def test_auto_4bit_for_an_8b_model_by_card(card_gib: int, four_bit: bool) -> None:
    bf16 = param_count(LLAMA31_8B) * 2
    got, reason = choose_4bit("auto", bf16, card_gib * GiB, cuda=True)
    assert got is four_bit
    assert reason.startswith("auto: ") and "GiB" in reason
    assert ("4-bit" in reason) is four_bit


def test_auto_4bit_margin_is_the_weights_again_and_at_least_4_gib() -> None:
    w = 10 * GiB
    assert choose_4bit("auto", w, 20 * GiB, True)[0] is False  # exactly weights + weights
    assert choose_4bit("auto", w, 20 * GiB - 1, True)[0] is True
    small = 1 * GiB  # a 0.5B model: the floor applies
    assert choose_4bit("auto", small, 5 * GiB, True)[0] is False
    assert choose_4bit("auto", small, 5 * GiB - 1, True)[0] is True


def test_forced_and_cpu_and_unknown_and_prequantized() -> None:
    assert choose_4bit(True, None, None, False) == (True, "model.load_in_4bit=true")
    assert choose_4bit(False, 99 * GiB, 1, True) == (False, "model.load_in_4bit=false")
    assert choose_4bit("auto", 16 * GiB, 8 * GiB, cuda=False)[0] is False  # no 4-bit on CPU
    assert choose_4bit("auto", None, 80 * GiB, True)[1].startswith("auto: weight size unknown")
    assert choose_4bit("auto", 16 * GiB, 200 * GiB, True, prequantized=True)[0] is True
    with pytest.raises(ValueError, match="^model.load_in_4bit: must be true, false or auto"):
        choose_4bit("maybe", 1, 1, True)


def test_weight_size_from_a_local_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA31_8B))
    size, pre = plan.weight_info(str(tmp_path), "auto")
    assert size == param_count(LLAMA31_8B) * 2 and pre is False
    assert plan.weight_info(str(tmp_path), "float32")[0] == param_count(LLAMA31_8B) * 4
    # a config without the architecture keys: the safetensors index says the size
    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "float32"}))
    index = {"metadata": {"total_size": 4_000}, "weight_map": {}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    assert plan.weight_info(str(tmp_path), "bfloat16") == (2_000, False)  # 1,000 fp32 params
    (tmp_path / "model.safetensors.index.json").unlink()
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 600)
    assert plan.weight_info(str(tmp_path), "auto")[0] == 300
    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"bits": 4}}))
    assert plan.weight_info(str(tmp_path), "auto")[1] is True


def test_engine_vllm_stops_at_the_config_check_when_vllm_is_missing(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "vllm" else real(n, *a)
    )
    with pytest.raises(ConfigError) as e:
        check(compose(["engine=vllm"]))
    assert str(e.value).startswith("engine: vllm is not installed")
    check(compose(["engine=vllm", "dry_run=true"]))  # a dry run loads nothing


def test_engine_vllm_stops_at_the_config_check_without_cuda(monkeypatch) -> None:
    real = importlib.util.find_spec
    spec = real("json")  # any spec: "vllm is installed"
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: spec if n == "vllm" else real(n, *a)
    )
    monkeypatch.setattr(plan, "cuda_available", lambda: False)
    with pytest.raises(ConfigError, match="^engine: vllm needs a CUDA GPU"):
        check(compose(["engine=vllm"]))


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("engine.name=fast", "engine"),
        ("engine.gpu_memory_utilization=0", "engine.gpu_memory_utilization"),
        ("engine.gpu_memory_utilization=1.5", "engine.gpu_memory_utilization"),
        ("engine.enable_prefix_caching=maybe", "engine.enable_prefix_caching"),
        ("engine.feed=drip", "engine.feed"),
        ("engine.name=static", "engine.enable_prefix_caching"),  # auto's keys: not static's
        ("model.load_in_4bit=sometimes", "model.load_in_4bit"),
    ],
)
def test_bad_engine_values_name_their_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as e:
        check(compose([override]))
    assert str(e.value).startswith(key + ":"), str(e.value)


def test_gpu_model_configs_default_to_auto() -> None:
    for name in ("llama31_8b", "llama32_3b", "qwen25_7b", "mistral_7b", "gemma2_9b", "phi35_mini"):
        cfg = compose([f"model={name}"])
        assert cfg.model.load_in_4bit == "auto", name
        assert cfg.model.backend == "transformers", name
        check(cfg)  # composes and passes the config check on this CPU machine


def test_the_backend_records_what_it_chose_and_why(tiny_model: Path) -> None:
    from synthgen.backends.transformers import Backend

    b = Backend(name_or_path=str(tiny_model), load_in_4bit="auto", eos_tokens=["<|im_end|>"])
    try:
        assert b.engine == "dynamic" and b.choices["reason"] == "auto: no CUDA GPU"
        assert b.choices["load_in_4bit"] == {
            "setting": "auto",
            "chosen": False,
            "reason": "auto: no CUDA GPU (4-bit weights need one)",
        }
        assert b.streamer() is None  # the transformers engines take batches
    finally:
        b.close()
