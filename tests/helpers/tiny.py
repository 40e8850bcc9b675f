"""A tiny random-weight Llama chat model, built locally: nothing is downloaded.

The tokenizer is a byte-level BPE trained with `tokenizers`, the chat template is ChatML,
and the model is a 2-layer LlamaConfig saved with save_pretrained, so the pipeline loads
it through the same from_pretrained path a hub model takes.
"""

from __future__ import annotations

import json
from pathlib import Path

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def training_text(repo: Path) -> list[str]:
    """Sentences to train the BPE on: the sample essays when present, plus the prompt files as
    they were on 2026-12-07 (tests/data/tiny_tokenizer_texts.json). Frozen, not read from
    conf/prompt/: a prompt edit would change the vocabulary, so every random-weight output the
    tests pin (lengths, early ends) would move with it."""
    texts = [p.read_text(encoding="utf-8") for p in sorted((repo / "data").rglob("*.md"))]
    frozen = repo / "tests" / "data" / "tiny_tokenizer_texts.json"
    texts += json.loads(frozen.read_text(encoding="utf-8"))["texts"]
    texts.append("What is the question? The answer is that the film and the director matter.")
    return texts


def build_tiny_model(out: Path, repo: Path, vocab_size: int = 1024, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(training_text(repo), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    fast.chat_template = CHATML
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)

    torch.manual_seed(seed)
    eos = fast.convert_tokens_to_ids("<|im_end|>")
    pad = fast.convert_tokens_to_ids("<|endoftext|>")
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        eos_token_id=eos,
        pad_token_id=pad,
        bos_token_id=None,
        tie_word_embeddings=False,
        initializer_range=0.5,  # large random weights: varied greedy output, not one token repeated
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad)
    model.save_pretrained(out)
    return out


def build_tiny_embedder(out: Path, repo: Path, vocab_size: int = 2000, seed: int = 0) -> Path:
    """A random 2-layer BERT sentence-transformers model (WordPiece tokenizer trained here).

    Random weights give meaningless but deterministic embeddings: fine for shapes, ordering
    and training-loop tests, never for quality claims.
    """
    import torch
    from sentence_transformers import SentenceTransformer, models
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers import models as tmodels
    from transformers import BertConfig, BertModel, BertTokenizerFast

    tok = Tokenizer(tmodels.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(
        training_text(repo),
        trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials),
    )
    from tokenizers.processors import TemplateProcessing

    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    hf_dir = out / "hf"
    hf_dir.mkdir(parents=True, exist_ok=True)
    fast = BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    fast.model_max_length = 256
    fast.save_pretrained(hf_dir)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(fast),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        initializer_range=0.5,  # spread-out random embeddings: texts do not all collapse together
    )
    BertModel(config).save_pretrained(hf_dir)
    word = models.Transformer(str(hf_dir), max_seq_length=256)
    dim = getattr(word, "get_embedding_dimension", None) or word.get_word_embedding_dimension
    pool = models.Pooling(dim(), pooling_mode="mean")
    st = SentenceTransformer(modules=[word, pool, models.Normalize()], device="cpu")
    st.save(str(out / "st"))
    return out / "st"
