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
>>> from stablesemantics.evaluate import caption_scores
>>> from stablesemantics.training import CaptionerTraining, train_captioner
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
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from stablesemantics import world
from stablesemantics.images import resize_images

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


# ----------------------------------------------------------------------------- the small captioner


class SmallCaptioner(nn.Module):
    """Image → caption: a convolutional encoder (a grid of ``(size/8)²`` feature vectors) and a
    small Transformer decoder that attends to the grid (teacher forcing in training, greedy
    decoding in :meth:`generate`)."""

    def __init__(
        self,
        vocab: Vocabulary,
        image_size: int = 32,
        width: int = 32,
        d_model: int = 128,
        layers: int = 2,
        heads: int = 4,
        max_len: int = 32,
    ):
        super().__init__()
        if image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, got {image_size}")
        self.vocab, self.image_size, self.max_len = vocab, image_size, max_len
        w = width

        def conv(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(8, cout), nn.SiLU())

        self.encoder = nn.Sequential(
            conv(3, w, 1), conv(w, 2 * w, 2), conv(2 * w, 2 * w, 2), conv(2 * w, 4 * w, 2), nn.Conv2d(4 * w, d_model, 1)
        )
        grid = (image_size // 8) ** 2
        self.grid_pos = nn.Parameter(torch.randn(1, grid, d_model) * 0.02)
        self.token_emb = nn.Embedding(len(vocab), d_model)
        self.token_pos = nn.Parameter(torch.randn(1, max_len, d_model) * 0.02)
        layer = nn.TransformerDecoderLayer(d_model, heads, 2 * d_model, dropout=0.1, batch_first=True, norm_first=True)
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


def _device(device: str | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _to_tensor(images: np.ndarray, size: int, device) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(resize_images(images, size))).permute(0, 3, 1, 2)
    return (x.float() / 127.5 - 1).to(device)


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
