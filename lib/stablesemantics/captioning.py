"""Captioning benchmark: does a generated image show what its prompt asked for?

StableSemantics scores prompt fidelity by captioning the generated images and comparing the
captions with the prompts (BLEU, CIDEr). Two captioners, one interface (images in, strings out):

* :class:`SmallCaptioner` — a small CNN encoder + Transformer decoder trained here on MicroWorld
  renders and their clean captions. On MicroWorld it is the captioner of the book: the same
  captioner on the *renders* of the prompts' scenes gives the upper reference (how well a caption
  can match when the image is exactly right), on mismatched renders the chance level.
* BLIP (Li et al. 2022) through ``transformers`` for real models (:func:`load_blip`,
  :func:`blip_captions`); :func:`tiny_random_blip` builds a random-weight BLIP offline for tests.

Scores come from ``pycocoevalcap``'s BLEU and CIDEr (pure Python; METEOR and SPICE need Java and
are left out). Captions are tokenised here (lower case, words only) instead of by the Java PTB
tokenizer of the COCO toolkit.

Example (seconds on a CPU; a few steps teach nothing, the shapes are what matter):

>>> import numpy as np
>>> from stablesemantics import world
>>> scenes = world.render_scenes(8, seed=0, config=world.WorldConfig(size=32, max_objects=1))
>>> images = world.stack_images(scenes)
>>> model = train_captioner(CaptionerTraining(steps=2, batch=4, image_size=32),
...                         images=images, captions=[s.caption for s in scenes])
>>> caps = caption_images(model, images[:2])
>>> len(caps), all(isinstance(c, str) for c in caps)
(2, True)
>>> round(caption_scores(["a red ball"], [["a red ball"]])["BLEU-1"], 3)
1.0
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import world

__all__ = [
    "CaptionerTraining",
    "SmallCaptioner",
    "Vocabulary",
    "blip_captions",
    "caption_images",
    "caption_scores",
    "class_recall",
    "load_blip",
    "mentioned_classes",
    "resize_images",
    "tiny_random_blip",
    "tokenize",
    "train_captioner",
    "world_vocabulary",
]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"


def tokenize(text: str) -> list[str]:
    """Lower-case words (letters and digits): the tokenisation used for training and scoring.

    >>> tokenize("A small red car, next to a TREE!")
    ['a', 'small', 'red', 'car', 'next', 'to', 'a', 'tree']
    """
    return re.findall(r"[a-z0-9]+", str(text).lower())


@dataclass
class Vocabulary:
    """Word ↔ id; ids 0–3 are ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``.

    >>> v = Vocabulary.from_captions(["a red car", "a blue car"])
    >>> v.encode("a red bus", max_len=6)
    [1, 4, 7, 3, 2, 0]
    >>> v.decode(v.encode("a red car", max_len=8))
    'a red car'
    """

    words: list[str]

    def __post_init__(self) -> None:
        if self.words[:4] != [PAD, BOS, EOS, UNK]:
            self.words = [PAD, BOS, EOS, UNK, *[w for w in self.words if w not in (PAD, BOS, EOS, UNK)]]
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def from_captions(cls, captions: Sequence[str], min_count: int = 1) -> Vocabulary:
        counts = Counter(w for c in captions for w in tokenize(c))
        return cls([PAD, BOS, EOS, UNK, *sorted(w for w, n in counts.items() if n >= min_count)])

    def encode(self, text: str, max_len: int) -> list[int]:
        """``<bos> words <eos>`` padded (or cut, keeping ``<eos>``) to ``max_len`` ids."""
        ids = [1, *(self.index.get(w, 3) for w in tokenize(text))][: max_len - 1] + [2]
        return ids + [0] * (max_len - len(ids))

    def decode(self, ids) -> str:
        words = []
        for i in (int(i) for i in ids):
            if i == 2:
                break
            if i > 3:
                words.append(self.words[i])
        return " ".join(words)


def world_vocabulary(n_captions: int = 2000, seed: int = 12345) -> Vocabulary:
    """Every word MicroWorld captions use: class names and synonyms, colours, sizes, places,
    connectors (from the world's tables and a sample of captions)."""
    words = set()
    for spec in world.CLASSES.values():
        words.update(w for s in spec.synonyms for w in tokenize(s))
    words.update(world.COLOURS)
    for phrases in world.PLACE_PHRASES.values():
        words.update(w for p in phrases for w in tokenize(p))
    for s in world.render_scenes(n_captions, seed=seed, config=world.WorldConfig(size=16)):
        words.update(tokenize(s.caption))
    return Vocabulary([PAD, BOS, EOS, UNK, *sorted(words)])


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """``(n, H, W, 3)`` uint8 → ``(n, size, size, 3)`` uint8 by area averaging (or bilinear upscaling)."""
    images = np.asarray(images)
    if images.shape[1:3] == (size, size):
        return images
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    mode = "area" if size <= min(images.shape[1:3]) else "bilinear"
    y = F.interpolate(x, size=(size, size), mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))
    return y.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


# ----------------------------------------------------------------------------- the small captioner


class SmallCaptioner(nn.Module):
    """Image → caption: a convolutional encoder (a grid of ``(size/8)²`` feature vectors) and a
    small Transformer decoder that attends to the grid (teacher forcing in training, greedy
    decoding in :meth:`generate`)."""

    def __init__(self, vocab: Vocabulary, image_size: int = 32, width: int = 32, d_model: int = 128,
                 layers: int = 2, heads: int = 4, max_len: int = 32):
        super().__init__()
        if image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, got {image_size}")
        self.vocab, self.image_size, self.max_len = vocab, image_size, max_len
        w = width

        def conv(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.SiLU())

        self.encoder = nn.Sequential(conv(3, w, 1), conv(w, 2 * w, 2), conv(2 * w, 2 * w, 2),
                                     conv(2 * w, 4 * w, 2), nn.Conv2d(4 * w, d_model, 1))
        grid = (image_size // 8) ** 2
        self.grid_pos = nn.Parameter(torch.randn(1, grid, d_model) * 0.02)
        self.token_emb = nn.Embedding(len(vocab), d_model)
        self.token_pos = nn.Parameter(torch.randn(1, max_len, d_model) * 0.02)
        layer = nn.TransformerDecoderLayer(d_model, heads, 2 * d_model, dropout=0.1, batch_first=True,
                                           norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, len(vocab))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(images)  # (n, d, g, g)
        return feats.flatten(2).transpose(1, 2) + self.grid_pos

    def decode(self, memory: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        n = tokens.shape[1]
        x = self.token_emb(tokens) + self.token_pos[:, :n]
        causal = torch.triu(torch.full((n, n), float("-inf"), device=tokens.device), 1)
        return self.head(self.norm(self.decoder(x, memory, tgt_mask=causal)))

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, len, vocab)`` for next-token prediction after each of ``tokens``."""
        return self.decode(self.encode(images), tokens)

    @torch.no_grad()
    def generate(self, images: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
        """Greedy decoding; ``(n, len)`` ids starting with ``<bos>``."""
        max_len = max_len or self.max_len
        memory = self.encode(images)
        tokens = torch.full((len(images), 1), 1, dtype=torch.long, device=images.device)
        done = torch.zeros(len(images), dtype=torch.bool, device=images.device)
        for _ in range(max_len - 1):
            nxt = self.decode(memory, tokens)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.zeros_like(nxt), nxt)
            tokens = torch.cat([tokens, nxt[:, None]], 1)
            done |= nxt == 2
            if bool(done.all()):
                break
        return tokens


@dataclass
class CaptionerTraining:
    """Settings of :func:`train_captioner` (``image_size``: images are resized to it)."""

    steps: int = 1500
    batch: int = 64
    lr: float = 1e-3
    seed: int = 0
    image_size: int = 32
    width: int = 32
    d_model: int = 128
    layers: int = 2
    max_len: int = 32
    device: str | None = None  # None: CUDA when available, else CPU


def _device(device: str | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _to_tensor(images: np.ndarray, size: int, device) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(resize_images(images, size))).permute(0, 3, 1, 2)
    return (x.float() / 127.5 - 1).to(device)


def train_captioner(cfg: CaptionerTraining, images: np.ndarray, captions: Sequence[str],
                    vocab: Vocabulary | None = None, log_every: int = 100, progress=None) -> SmallCaptioner:
    """Train a :class:`SmallCaptioner` on ``(n, H, W, 3)`` uint8 images and their captions.

    AdamW with a one-cycle schedule, cross-entropy on the next word (padding ignored), random
    batches, no augmentation. ``vocab`` defaults to :func:`world_vocabulary`.
    """
    if len(images) != len(captions) or not len(images):
        raise ValueError(f"need as many captions as images (got {len(images)} images, {len(captions)} captions)")
    device = _device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    vocab = vocab or world_vocabulary()
    model = SmallCaptioner(vocab, cfg.image_size, cfg.width, cfg.d_model, cfg.layers, max_len=cfg.max_len).to(device)
    x_all = _to_tensor(images, cfg.image_size, "cpu")
    y_all = torch.tensor([vocab.encode(c, cfg.max_len) for c in captions], dtype=torch.long)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.steps, 1), pct_start=0.1)
    model.train()
    t0 = time.time()
    for step in range(cfg.steps):
        idx = torch.from_numpy(rng.integers(0, len(x_all), min(cfg.batch, len(x_all))))
        y = y_all[idx]
        y = y[:, : int((y != 0).sum(1).max())]  # drop the columns that are padding in the whole batch
        x, y = x_all[idx].to(device), y.to(device)
        logits = model(x, y[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[:, 1:].reshape(-1), ignore_index=0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if progress is not None and (step + 1) % log_every == 0:
            progress({"step": step + 1, "loss": round(loss.item(), 4), "seconds": round(time.time() - t0, 1)})
    return model.eval()


@torch.no_grad()
def caption_images(model: SmallCaptioner, images: np.ndarray, batch: int = 128) -> list[str]:
    """Greedy captions of ``(n, H, W, 3)`` uint8 images (resized to the model's image size)."""
    device = next(model.parameters()).device
    model.eval()
    out: list[str] = []
    for i in range(0, len(images), batch):
        ids = model.generate(_to_tensor(images[i : i + batch], model.image_size, device))
        out.extend(model.vocab.decode(row[1:]) for row in ids.cpu().tolist())
    return out


# ----------------------------------------------------------------------------- scores


def caption_scores(candidates: Sequence[str], references: Sequence, per_image: bool = False) -> dict:
    """BLEU-1..4 and CIDEr(-D) of candidate captions against references (pycocoevalcap).

    ``references[i]`` is one string or a list of strings for candidate ``i``. Corpus-level scores
    as in the COCO caption toolkit; CIDEr's document frequencies come from these references, so
    CIDEr is comparable only between runs scored against the same reference set. With
    ``per_image=True`` the per-image CIDEr is added under ``"CIDEr_per_image"``.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates for {len(references)} references")
    if not len(candidates):
        raise ValueError("nothing to score")
    gts, res = {}, {}
    for i, (cand, refs) in enumerate(zip(candidates, references)):
        refs = [refs] if isinstance(refs, str) else list(refs)
        gts[i] = [" ".join(tokenize(r)) or "<empty>" for r in refs]
        res[i] = [" ".join(tokenize(cand)) or "<empty>"]
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    cider, cider_each = Cider().compute_score(gts, res)
    out = {f"BLEU-{k + 1}": float(b) for k, b in enumerate(bleu)}
    out["CIDEr"] = float(cider)
    if per_image:
        out["CIDEr_per_image"] = np.asarray(cider_each, np.float64)
    return out


def mentioned_classes(caption: str) -> set[str]:
    """MicroWorld classes a caption names (any of a class's synonyms, as whole words).

    >>> sorted(mentioned_classes("a puppy next to a red automobile"))
    ['car', 'dog']
    """
    words = " " + " ".join(tokenize(caption)) + " "
    return {name for name, spec in world.CLASSES.items()
            if any(f" {' '.join(tokenize(s))} " in words for s in spec.synonyms)}


def class_recall(captions: Sequence[str], scenes: Sequence) -> float:
    """Fraction of the prompted objects whose class the caption of their image names
    (``captions[i]`` describes the image made for ``scenes[i]``): a plain prompt-fidelity number."""
    hits = total = 0
    for caption, scene in zip(captions, scenes):
        named = mentioned_classes(caption)
        hits += sum(o.cls in named for o in scene.objects)
        total += len(scene.objects)
    return hits / total if total else float("nan")


# ----------------------------------------------------------------------------- BLIP


def load_blip(model_id: str = "Salesforce/blip-image-captioning-base", device: str | None = None, dtype=None):
    """``(model, processor)`` of a BLIP captioning checkpoint from the hub (or ``"tiny-random"``)."""
    if model_id == "tiny-random":
        model, processor = tiny_random_blip()
    else:
        from transformers import BlipForConditionalGeneration, BlipProcessor

        processor = BlipProcessor.from_pretrained(model_id)
        kwargs = {"dtype": dtype} if dtype is not None else {}
        model = BlipForConditionalGeneration.from_pretrained(model_id, **kwargs)
    return model.to(_device(device)).eval(), processor


def tiny_random_blip(seed: int = 0, image_size: int = 32):
    """A BLIP captioner with random weights and a tiny word-level BERT tokenizer, built offline.

    The real code path of :func:`blip_captions` runs on it (processor, ``generate``, decoding);
    its captions are random words.
    """
    import inspect
    import tempfile
    from pathlib import Path

    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    words = [w for w in world_vocabulary(200).words if not w.startswith("<")]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *words]
    if "vocab" in inspect.signature(BertTokenizerFast.__init__).parameters:  # transformers >= 5
        tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    else:  # transformers 4: from a vocabulary file
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "vocab.txt"
            path.write_text("\n".join(vocab) + "\n")
            tokenizer = BertTokenizerFast(vocab_file=str(path), do_lower_case=True)
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    config = BlipConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, encoder_hidden_size=32, intermediate_size=37,
                         projection_dim=32, num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=40, bos_token_id=5, eos_token_id=3, sep_token_id=3,
                         pad_token_id=0),
        vision_config=dict(hidden_size=32, intermediate_size=37, projection_dim=32, num_hidden_layers=2,
                           num_attention_heads=4, image_size=image_size, patch_size=8),
        projection_dim=32,
        image_text_hidden_size=32,
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config).eval()
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size})
    return model, BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


@torch.no_grad()
def blip_captions(model, processor, images: np.ndarray, batch: int = 16, max_new_tokens: int = 30,
                  prompt: str | None = None) -> list[str]:
    """Captions of ``(n, H, W, 3)`` uint8 images with a BLIP model (greedy). ``prompt`` (e.g.
    ``"a picture of"``) is BLIP's conditional captioning; it is removed from the returned text."""
    from PIL import Image

    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    out: list[str] = []
    for i in range(0, len(images), batch):
        pil = [Image.fromarray(np.asarray(im, np.uint8)) for im in images[i : i + batch]]
        kwargs = {"text": [prompt] * len(pil)} if prompt else {}
        inputs = processor(images=pil, return_tensors="pt", **kwargs).to(device)
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        ids = model.generate(**inputs, max_new_tokens=max_new_tokens)
        texts = processor.batch_decode(ids, skip_special_tokens=True)
        if prompt:
            texts = [t[len(prompt):] if t.lower().startswith(prompt.lower()) else t for t in texts]
        out.extend(t.strip() for t in texts)
    return out
