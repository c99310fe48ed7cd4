"""A tiny T5-style tokenizer trained offline, for the tiny random SD3 and Flux pipelines.

Real SD3 and Flux checkpoints ship their T5 tokenizer (a SentencePiece Unigram model); machines
without the hub cannot fetch it. This module trains a small Unigram model with the ``tokenizers``
library on a fixed word list (plus every printable ASCII character, so any ASCII text tokenises
without unknown tokens) and wraps it as a ``transformers.T5TokenizerFast``: same special tokens as
T5 (pad 0, end 1, unk 2), no start token, ``▁`` word boundaries. Its token positions are not real
T5's; tests only need a tokenizer of the same kind.
"""

from __future__ import annotations

import functools
import json
import string

T5_PAD_ID, T5_EOS_ID, T5_UNK_ID = 0, 1, 2

# Words of typical captions: frequent enough in the training text to become whole-word pieces.
_WORDS = (
    "a an the of on in at with and by near next to under over photo picture painting of cat cats dog dogs "
    "red blue green yellow white black car cars street road small large big tree trees house man woman "
    "person people sitting standing table chair sky grass water bird horse boat"
).split()


@functools.lru_cache(maxsize=1)
def load_tiny_t5_tokenizer():
    """A ``T5TokenizerFast`` with a Unigram vocabulary trained here (a few hundred pieces, deterministic).

    Cached per process: do not mutate it (``copy.deepcopy`` it first).

    Example:
        >>> tok = load_tiny_t5_tokenizer()
        >>> tok.pad_token_id, tok.eos_token_id, tok("a red car")["input_ids"][-1]
        (0, 1, 1)
    """
    from tokenizers import SentencePieceUnigramTokenizer  # optional heavy dependency, only for tiny pipelines
    from transformers import T5TokenizerFast

    text = [" ".join(_WORDS)] * 20 + [" ".join(string.ascii_letters + string.digits + string.punctuation)]
    trainer_input = SentencePieceUnigramTokenizer()
    trainer_input.train_from_iterator(
        text, vocab_size=300, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    vocab = [(piece, float(score)) for piece, score in json.loads(trainer_input.to_str())["model"]["vocab"]]
    tok = T5TokenizerFast(vocab=vocab, extra_ids=0)
    if (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) != (T5_PAD_ID, T5_EOS_ID, T5_UNK_ID):
        raise RuntimeError("the tiny T5 tokenizer's special tokens are not T5's (pad 0, end 1, unk 2)")
    return tok
