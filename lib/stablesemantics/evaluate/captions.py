"""Caption scores (BLEU, METEOR, CIDEr), classes named, and the BLIP captioner for real models."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from stablesemantics import world
from stablesemantics.evaluate.captioner import _device, tokenize, world_vocabulary

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
    return {
        name
        for name, spec in world.CLASSES.items()
        if any(f" {' '.join(tokenize(s))} " in words for s in spec.synonyms)
    }


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
        text_config=dict(
            vocab_size=len(vocab),
            hidden_size=32,
            encoder_hidden_size=32,
            intermediate_size=37,
            projection_dim=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=40,
            bos_token_id=5,
            eos_token_id=3,
            sep_token_id=3,
            pad_token_id=0,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=37,
            projection_dim=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=image_size,
            patch_size=8,
        ),
        projection_dim=32,
        image_text_hidden_size=32,
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config).eval()
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size})
    return model, BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


@torch.no_grad()
def blip_captions(
    model, processor, images: np.ndarray, batch: int = 16, max_new_tokens: int = 30, prompt: str | None = None
) -> list[str]:
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
            texts = [t[len(prompt) :] if t.lower().startswith(prompt.lower()) else t for t in texts]
        out.extend(t.strip() for t in texts)
    return out
