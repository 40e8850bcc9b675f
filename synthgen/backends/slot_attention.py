"""The continuous engine's attention: a function registered with transformers'
AttentionInterface (stable across transformers 4.48-5.x). The model's own modules compute
q/k/v and RoPE; this function writes k/v into the engine's KV slots and attends over them with
a per-row mask, so rows of any length share one forward."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

ATTENTION = "synthgen_slots"  # the attention function's name in transformers' AttentionInterface

_CTX: Any = None  # what the attention function needs during one forward of the engine


@dataclass
class Ctx:
    k: list[Any]  # per layer [slots, kv_heads, L, head_dim]
    v: list[Any]
    rows: Any  # [R, 1] slot of each input row (writes)
    pos: Any  # [R, W] cache position of each input token (writes)
    fresh: bool  # prefill of prompts without a cached prefix: causal attention on the new k/v
    gather: Any = None  # [R] slots to read (None: every slot, in order)
    mask: Any = None  # [R, 1, G*W, keys] bool, the folded queries' visible keys
    keys: int = 0  # cache positions read


def slots_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[Any, None]:
    """Write this layer's new k/v into the slots, then attend (registered as ATTENTION).

    query [R, heads, W, D], key/value [R, kv_heads, W, D] (RoPE applied). Cached attention
    folds each KV head's query heads into the query axis (no K/V copy per query head, as
    repeat_kv makes under a mask); the mask is per row, so rows of any length share a step.
    """
    import torch.nn.functional as F

    ctx = _CTX
    if ctx is None:
        raise RuntimeError(f"attention {ATTENTION!r} runs inside the continuous engine only")
    if kwargs.get("sliding_window") or kwargs.get("softcap"):
        raise NotImplementedError("sliding-window or soft-capped attention")
    i = module.layer_idx
    kc, vc = ctx.k[i], ctx.v[i]
    kc[ctx.rows, :, ctx.pos] = key.permute(0, 2, 1, 3).to(kc.dtype)
    vc[ctx.rows, :, ctx.pos] = value.permute(0, 2, 1, 3).to(vc.dtype)
    rows, heads, width, dim = query.shape
    kv_heads = key.shape[1]
    if ctx.fresh:  # causal over the new tokens only: the flash kernel, K/V per query head
        # (a copy of this forward's k/v, small beside its matmuls; no reliance on enable_gqa)
        group = heads // kv_heads
        if group > 1:
            key = key[:, :, None].expand(rows, kv_heads, group, width, dim).reshape(query.shape)
            value = value[:, :, None].expand(rows, kv_heads, group, width, dim).reshape(query.shape)
        out = F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=scaling)
        return out.transpose(1, 2).contiguous(), None
    if ctx.gather is None:
        keys, values = kc[:, :, : ctx.keys], vc[:, :, : ctx.keys]
    else:
        keys, values = kc[ctx.gather, :, : ctx.keys], vc[ctx.gather, :, : ctx.keys]
    q = query.reshape(rows, kv_heads, (heads // kv_heads) * width, dim)
    out = F.scaled_dot_product_attention(
        q, keys.to(q.dtype), values.to(q.dtype), attn_mask=ctx.mask, scale=scaling
    )
    return out.reshape(rows, heads, width, dim).transpose(1, 2).contiguous(), None


def register_attention() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, slots_attention)


def unsupported(config: Any) -> str | None:
    """Why the engine cannot run this model, or None."""
    c = config.get_text_config() if hasattr(config, "get_text_config") else config
    if getattr(c, "attn_logit_softcapping", None) or getattr(c, "final_logit_softcapping", None):
        return "soft-capped attention or logits (Gemma-2)"
    types = getattr(c, "layer_types", None) or []
    if any(t != "full_attention" for t in types):
        return f"layer types {sorted(set(types))}"
    if getattr(c, "sliding_window", None) and getattr(c, "use_sliding_window", True):
        return f"sliding-window attention ({c.sliding_window} tokens)"
    return None


def slot_bytes(config: Any, max_len: int, itemsize: int) -> int:
    """KV cache bytes of one slot of max_len tokens."""
    c = config.get_text_config() if hasattr(config, "get_text_config") else config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    kv = getattr(c, "num_key_value_heads", None) or c.num_attention_heads
    return 2 * c.num_hidden_layers * kv * head_dim * max_len * itemsize


@contextlib.contextmanager
def attending(ctx: Ctx) -> Iterator[None]:
    """The forwards inside write to and read from `ctx`'s slots."""
    global _CTX
    _CTX = ctx
    try:
        yield
    finally:
        _CTX = None
