"""The real CLIP BPE tokenizer, built offline from the vocabulary that open-clip-torch ships."""

from __future__ import annotations

import functools
import gzip
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from stablesemantics.paths import default_cache_dir

CLIP_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
CLIP_VOCAB_SIZE = 49408
CLIP_BOS_ID, CLIP_EOS_ID = 49406, 49407
CLIP_PAD_ID = CLIP_EOS_ID  # padding is <|endoftext|>, as in Stable Diffusion 1.x's tokenizer
CLIP_MAX_LENGTH = 77  # the text encoder's window: BOS, 75 tokens, EOS
_TOKENIZER_FORMAT = "1"  # bump to invalidate caches written by older code
_FORMAT_FILE = ".stablesemantics-tokenizer"


@functools.lru_cache(maxsize=1)
def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    return {v: k for k, v in _bytes_to_unicode().items()}


def clip_bpe_path() -> Path:
    """Path of the CLIP BPE merges file shipped by ``open-clip-torch`` (found without importing
    ``open_clip``, whose import needs torchvision)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the CLIP BPE vocabulary comes from the open-clip-torch package: pip install --no-deps open-clip-torch"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / CLIP_BPE_FILE
        if path.is_file():
            return path
    raise FileNotFoundError(f"{CLIP_BPE_FILE} not found in the open_clip package")


def _clip_vocab_and_merges(bpe_path: Path) -> tuple[dict[str, int], list[str]]:
    """Vocabulary and merges exactly as OpenAI CLIP's ``SimpleTokenizer`` builds them."""
    lines = gzip.open(bpe_path).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    byte_chars = list(_bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    if len(vocab) != CLIP_VOCAB_SIZE or len(set(vocab)) != CLIP_VOCAB_SIZE:
        raise ValueError(f"{bpe_path} does not give the {CLIP_VOCAB_SIZE}-token CLIP vocabulary")
    return {tok: i for i, tok in enumerate(vocab)}, [" ".join(m) for m in merges]


def _write_tokenizer_files(folder: Path) -> None:
    """Write vocab.json, merges.txt and (via transformers) tokenizer.json into ``folder``.

    Files are built in a temporary folder and moved in one by one (each move is atomic), the
    format marker last, so concurrent processes never load a half-written tokenizer.
    """
    from transformers import CLIPTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".clip-tokenizer-", suffix=".partial", dir=folder))
    try:
        vocab, merges = _clip_vocab_and_merges(clip_bpe_path())
        (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
        (tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", "utf-8")
        tok = CLIPTokenizerFast.from_pretrained(str(tmp), model_max_length=CLIP_MAX_LENGTH)
        tok.save_pretrained(str(tmp))  # adds tokenizer.json: later loads skip the conversion
        (tmp / _FORMAT_FILE).write_text(_TOKENIZER_FORMAT)
        for name in sorted(os.listdir(tmp), key=lambda n: n == _FORMAT_FILE):
            os.replace(tmp / name, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@functools.lru_cache(maxsize=4)
def _load_clip_tokenizer(folder: Path):
    from transformers import CLIPTokenizerFast

    fmt = folder / _FORMAT_FILE
    if not (fmt.is_file() and fmt.read_text().strip() == _TOKENIZER_FORMAT):
        ours = (_FORMAT_FILE, ".clip-tokenizer-")
        if folder.is_dir() and any(not p.name.startswith(ours) for p in folder.iterdir()):
            if not fmt.is_file():  # never overwrite files somebody else put there
                raise ValueError(
                    f"{folder} holds files that this library did not write; "
                    "give load_clip_tokenizer a new or empty folder"
                )
        _write_tokenizer_files(folder)
    tok = CLIPTokenizerFast.from_pretrained(str(folder), model_max_length=CLIP_MAX_LENGTH, pad_token="<|endoftext|>")
    ids = tok("a photo of a cat")["input_ids"]
    if len(tok) != CLIP_VOCAB_SIZE or ids != [CLIP_BOS_ID, 320, 1125, 539, 320, 2368, CLIP_EOS_ID]:
        raise RuntimeError(f"the CLIP tokenizer cached in {folder} is broken; delete that folder")
    return tok


def load_clip_tokenizer(cache_dir: str | Path | None = None):
    """The OpenAI CLIP tokenizer (as in ``openai/clip-vit-base-patch32``), built offline.

    The vocabulary is rebuilt from the BPE merges file of ``open-clip-torch`` the way OpenAI's
    ``SimpleTokenizer`` does, written (vocab.json, merges.txt, tokenizer.json) to ``cache_dir``
    (default: ``default_cache_dir() / "clip-tokenizer"``; files already there are reused) and
    loaded as a ``transformers.CLIPTokenizerFast`` (49,408 tokens,
    BOS 49406, EOS and pad 49407, ``model_max_length`` 77). Cached per process: do not mutate it.

    Example:
        >>> tok = load_clip_tokenizer()
        >>> tok("a photo of a cat")["input_ids"]
        [49406, 320, 1125, 539, 320, 2368, 49407]
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "clip-tokenizer"
    return _load_clip_tokenizer(folder.expanduser().resolve())


def count_tokens(text: str, tokenizer) -> int:
    """Number of tokens of ``text``, BOS and EOS included, before any truncation."""
    if not isinstance(text, str):
        raise TypeError(f"count_tokens expects a str, got {type(text).__name__}")
    return len(tokenizer(text, truncation=False, verbose=False)["input_ids"])


def prompt_too_long(text: str, tokenizer, max_length: int | None = None) -> bool:
    """True if ``text`` does not fit in ``max_length`` (default: ``tokenizer.model_max_length``)
    tokens, so the text encoder would truncate it."""
    return count_tokens(text, tokenizer) > (max_length or tokenizer.model_max_length)
