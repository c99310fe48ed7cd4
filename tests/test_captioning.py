"""The captioning benchmark: vocabulary, the small captioner, BLEU/CIDEr, and BLIP on a tiny random config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stablesemantics import evaluate, training, world
from stablesemantics.images import resize_images


def test_tokenize_and_vocabulary_round_trip():
    assert evaluate.tokenize("A Big, RED car!") == ["a", "big", "red", "car"]
    vocab = evaluate.world_vocabulary(n_captions=50)
    for scene in world.render_scenes(20, seed=7, config=world.WorldConfig(size=16)):
        ids = vocab.encode(scene.caption, max_len=40)
        assert len(ids) == 40 and ids[0] == 1 and 3 not in ids  # every world word is known
        assert vocab.decode(ids[1:]) == " ".join(evaluate.tokenize(scene.caption))
    assert vocab.encode("a zebra", 5) == [1, vocab.index["a"], 3, 2, 0]
    assert vocab.encode("a b c d e f", 4)[-1] == 2  # cut, but still ends with <eos>


def test_scores_hand_cases():
    perfect = evaluate.caption_scores(["a red car on a street"], [["a red car on a street"]])
    assert perfect["BLEU-1"] == pytest.approx(1.0) and perfect["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    # unigram precision 3/4 ("a", "red", "car" of "a red car here"), brevity penalty 1
    partial = evaluate.caption_scores(["a red car here"], ["a red car there"])
    assert partial["BLEU-1"] == pytest.approx(0.75, abs=1e-6)
    # CIDEr rewards agreement on rare words: the matching pair scores above the swapped pair
    refs = ["a red car on a street", "a white cloud in the sky", "a green tree in a field"]
    right = evaluate.caption_scores(refs, refs, per_image=True)
    wrong = evaluate.caption_scores(refs[1:] + refs[:1], refs)
    assert right["CIDEr"] > wrong["CIDEr"] and right["CIDEr_per_image"].shape == (3,)
    with pytest.raises(ValueError):
        evaluate.caption_scores(["a"], [])


def test_small_captioner_learns_a_tiny_set():
    scenes = world.render_scenes(4, seed=3, config=world.WorldConfig(size=16, max_objects=1))
    images = world.stack_images(scenes)
    captions = [s.caption for s in scenes]
    vocab = evaluate.Vocabulary.from_captions(captions)
    cfg = training.CaptionerTraining(
        steps=60, batch=4, lr=3e-3, image_size=16, width=8, d_model=32, layers=1, max_len=12, device="cpu"
    )
    model = training.train_captioner(cfg, images, captions, vocab=vocab)
    out = evaluate.caption_images(model, images)
    assert len(out) == 4 and all(isinstance(c, str) for c in out)
    assert evaluate.caption_scores(out, captions)["BLEU-1"] > 0.5  # memorises four captions
    assert resize_images(images, 8).shape == (4, 8, 8, 3)


def test_blip_path_on_a_tiny_random_config():
    model, processor = evaluate.tiny_random_blip(image_size=32)
    images = np.random.default_rng(0).integers(0, 255, (3, 48, 48, 3), dtype=np.uint8)
    torch.manual_seed(0)
    out = evaluate.blip_captions(model, processor, images, batch=2, max_new_tokens=5)
    assert len(out) == 3 and all(isinstance(c, str) and c for c in out)
    out = evaluate.blip_captions(model, processor, images[:1], max_new_tokens=5, prompt="a picture of")
    assert len(out) == 1
