"""engine=dynamic and static: transformers' `generate`, one batch at a time.

dynamic: the batch as it comes, a dynamic KV cache. static: fixed shapes so transformers
compiles the decode step once (see synthgen/backends/transformers.py): `static_rows` rows
(short batches padded with copies), prompts left-padded to a multiple of the prefill chunk,
a static cache grown in 256-token steps.

Each reply's logprob (Generated.logprob, base.mean_logprob) is gathered during `generate`
(token_logprobs): no extra forward, one [rows] tensor a step, one read-back per batch.
"""

from __future__ import annotations

from typing import Any

from synthgen.backends.base import Generated, GenParams, mean_logprob, per_row


class Batched:
    """base.Engine: `generate` on a loaded transformers model; `decode` cuts each row's new
    tokens."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        eos: list[int],
        pad: int,
        device: Any,
        prefill_chunk: int = 0,
    ) -> None:
        self.model, self.tokenizer, self.eos, self.pad = model, tokenizer, eos, pad
        self.device = device  # where the inputs go (the model's device)
        self.prefill_chunk = int(prefill_chunk)  # tokens per prefill forward (static); 0 = all
        self.static_rows = 0  # the fixed batch of the static engine, set by its first batch
        self._stop_cache: dict[tuple[str, ...], Any] = {}

    def generate(
        self, batch: list[list[int]], params: GenParams | list[GenParams], static: bool = False
    ) -> list[Generated]:
        if not static:
            return self._generate(batch, params, pad_to=None, rows=len(batch), static=False)
        # fixed shapes: `static_rows` rows, prompt width a multiple of the prefill chunk
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
        from transformers import LogitsProcessorList, StoppingCriteriaList

        params, limits = per_row(params, len(batch))
        width = pad_to or max(len(ids) for ids in batch)
        padded = batch + [batch[0]] * (rows - len(batch))  # filler rows keep the shape fixed
        input_ids = torch.full((len(padded), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(padded), width), dtype=torch.long)
        for i, ids in enumerate(padded):  # left padding: the new tokens line up on the right
            input_ids[i, width - len(ids) :] = torch.tensor(ids)
            mask[i, width - len(ids) :] = 1
        # min_new_tokens as each row's (min, max), held by row_lengths after the logprobs are
        # taken (transformers' own min_new_tokens processor would run before them)
        lengths = limits
        if limits is None and params.min_new_tokens:
            lengths = [(params.min_new_tokens, params.max_new_tokens)] * len(batch)
        kw = self._options(params, lengths, width, len(padded) - len(batch), static)
        first, gather = token_logprobs()
        kw["logits_processor"] = LogitsProcessorList([first, *kw.get("logits_processor", [])])
        kw["stopping_criteria"] = StoppingCriteriaList([*kw.get("stopping_criteria", []), gather])
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                max_new_tokens=params.max_new_tokens,
                eos_token_id=self.eos,
                pad_token_id=self.pad,
                **kw,
            )
        new = out[: len(batch), width:].tolist()
        logps = gather.rows(len(batch))
        stops = params.stop_strings
        most = [None] * len(batch) if limits is None else [hi for _, hi in limits]
        return [self.decode(row, m, stops, lp) for row, m, lp in zip(new, most, logps, strict=True)]

    def _options(
        self,
        params: GenParams,
        limits: list[tuple[int, int]] | None,
        width: int,
        fillers: int,
        static: bool,
    ) -> dict[str, Any]:
        """`generate` keywords: sampling, stop strings, the static cache, per-row lengths."""
        kw: dict[str, Any] = (
            {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p}
            if params.do_sample
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        if params.stop_strings:
            stop = self._stop_criteria(tuple(params.stop_strings))
            kw["stopping_criteria"] = [after_content(stop, self.tokenizer, width)]
        if static:
            kw["cache_implementation"] = "static"
            if self.prefill_chunk:
                kw["prefill_chunk_size"] = self.prefill_chunk
        if limits is not None:  # each row its own length: ended by a forced end token
            filler = [(0, params.max_new_tokens)] * fillers
            kw["logits_processor"] = [row_lengths(limits + filler, width, self.eos)]
        return kw

    def _stop_criteria(self, stops: tuple[str, ...]) -> Any:
        """transformers' StopStringCriteria (it matches a string across token boundaries),
        built once per set of strings: building it scans the whole vocabulary (2-6 s for
        Gemma's 262k tokens on a laptop CPU), which `generate(stop_strings=...)` would redo
        at every batch."""
        if stops not in self._stop_cache:
            from transformers import StopStringCriteria

            self._stop_cache[stops] = StopStringCriteria(self.tokenizer, list(stops))
        return self._stop_cache[stops]

    def decode(
        self,
        new: list[int],
        most: int | None = None,
        stop_strings: list[str] | None = None,
        logps: list[float] | None = None,
    ) -> Generated:
        """Cut at the first end-of-turn token or after the first stop string; what follows is
        padding after the row finished.

        `most`: the row's own max_new_tokens, where the batch ran longer: its forced end token
        (row_lengths) is not one of its tokens, as with an engine that stops each row itself.
        `logps`: each new token's log-probability, as `new` (token_logprobs); the logprob is
        their mean over the kept tokens (the end token and the padding after it not counted).
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
        logprob = mean_logprob(logps[: len(kept)]) if logps and len(logps) >= len(kept) else None
        return Generated(
            text=text, tokens=len(kept) + (end is not None), finished=finished, logprob=logprob
        )

    def close(self) -> None:
        self.model = None
        self._stop_cache.clear()


def token_logprobs() -> tuple[Any, Any]:
    """(logits processor, stopping criterion) that record each chosen token's log-probability
    under the raw logits during `generate`, for Generated.logprob.

    The processor goes first in the `logits_processor` given to `generate`: transformers runs
    it on the step's float32 logits before synthgen's own processors (row_lengths) and before
    the temperature/top-p warpers, which it appends after them (only processors that the
    model's generation_config itself asks for, such as a repetition_penalty, run before it).
    It keeps those logits and their log-normalizer [rows]; the stopping criterion, called
    once the step's token is appended to input_ids, gathers that token's logit minus the
    normalizer: one [rows] tensor a step on the device, no copy of the logits. (Only
    row_lengths changes the logits in place, on end tokens that are then either not chosen or
    past the row's own length: never a counted token.) `rows(n)` reads the first n rows back
    once: per row, one value per new token, padding steps included (the caller cuts them);
    empty rows (logprob None) where the steps did not pair up, as with a `generate` that skips
    the processors.
    """
    import torch
    from transformers import LogitsProcessor, StoppingCriteria

    class First(LogitsProcessor):
        logits: Any = None
        norm: Any = None

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            self.logits, self.norm = scores, torch.logsumexp(scores, -1)
            return scores

    first = First()

    class Gather(StoppingCriteria):
        def __init__(self) -> None:
            self.steps: list[Any] = []
            self.paired = True  # every step had its logits

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            if first.logits is None:
                self.paired = False
            else:
                chosen = first.logits.gather(1, input_ids[:, -1:].to(first.logits.device))
                self.steps.append(chosen[:, 0] - first.norm)
                first.logits = first.norm = None  # not kept past the step
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

        def rows(self, n: int) -> list[list[float]]:
            if not self.steps or not self.paired:
                return [[] for _ in range(n)]
            return torch.stack(self.steps, 1)[:n].tolist()

    return first, Gather()


def after_content(inner: Any, tokenizer: Any, start: int) -> Any:
    """`inner` (a StopStringCriteria), counting a match only once a row's reply holds text:
    a base model often opens with a blank line, which a "\\n\\n" stop string would turn into
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
