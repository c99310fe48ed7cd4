"""The readers of the MicroSD evaluation (``stablesemantics eval``, benchmarks/microsd_eval.py): colour
of an object, recall, the autoencoder round trip, the map scores and the table.

The evaluation itself takes minutes on MicroSD; these check, on rendered scenes whose truth is
known and on the tiny random pipeline, that its a) numbers mean what its table says.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import benchmark_module

from stablesemantics import world
from stablesemantics.evaluate import microsd_eval
from stablesemantics.evaluate.microsd_eval import MicroSDEvalConfig, evaluate_microsd, vae_round_trip
from stablesemantics.evaluate.microsd_eval_scores import (
    c_rows,
    fidelity,
    generated_map_scores,
    markdown,
    object_colour,
    own_vs_other_mass,
)


def test_the_benchmark_script_is_the_eval_command():
    with benchmark_module("microsd_eval") as module:
        assert module.app.registered_commands  # it runs `stablesemantics eval`; nothing of its own


def test_speed_part_runs_and_merges_into_the_results(tiny_pipe, tmp_path, monkeypatch):
    monkeypatch.setattr(microsd_eval, "load_pipeline", lambda model, device: tiny_pipe)
    monkeypatch.setattr(microsd_eval, "speed", lambda pipe, size, guidance_scale=7.5: guidance_scale)
    (tmp_path / "microsd_eval_quick.json").write_text(json.dumps({"b_localisation": "kept"}))
    out = evaluate_microsd(MicroSDEvalConfig(model="tiny-random", quick=True, parts="d", results_dir=str(tmp_path)))
    assert out["d_speed_images_per_s"] == 7.5 and out["d_speed_images_per_s_no_guidance"] == 1.0
    assert json.loads((tmp_path / "microsd_eval_quick.json").read_text()) == out and out["b_localisation"] == "kept"
    assert not (tmp_path / "microsd_eval_quick.md").exists()  # the table waits for every part


def test_colour_reader_recovers_the_rendered_colours():
    scenes = world.render_scenes(60, seed=321, config=world.WorldConfig(min_objects=1, max_objects=2))
    right = total = 0
    for s in scenes:
        for k, obj in enumerate(s.objects):
            mask = s.instance_mask == k + 1
            if mask.sum() >= 12:
                total += 1
                right += object_colour(s.image, mask) == obj.colour
    assert total > 40 and right / total >= 0.9  # shading (dark/light roles, brightness) is read through
    flat = np.zeros((8, 8, 3), np.uint8) + np.asarray(world.COLOURS["purple"], np.uint8)
    assert object_colour(flat, np.ones((8, 8), bool)) == "purple"
    assert object_colour(flat, np.zeros((8, 8), bool)) is None


def test_fidelity_counts_found_objects_and_their_colours():
    scenes = world.render_scenes(12, seed=5, config=world.WorldConfig(min_objects=1, max_objects=2))
    images = np.stack([s.image for s in scenes])
    truth = np.stack([s.class_mask for s in scenes])
    perfect = fidelity(images, scenes, truth, min_pixels=1)
    assert perfect["objects"] == sum(len(s.objects) for s in scenes)
    assert perfect["recall"] == pytest.approx(1.0, abs=0.1)  # only objects hidden by others are lost
    blind = fidelity(images, scenes, np.zeros_like(truth), min_pixels=1)
    assert blind["recall"] == 0 and blind["colour_accuracy"] == 0


def test_vae_round_trip_keeps_shape_and_type(tiny_pipe):
    images = np.stack([s.image for s in world.render_scenes(3, seed=1, config=world.WorldConfig(size=32))])
    out = vae_round_trip(tiny_pipe, images, batch=2)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out, images)  # a random autoencoder does not reproduce its input


def test_generated_map_scores_rank_true_maps_above_baselines():
    scenes = world.render_scenes(16, seed=7, config=world.WorldConfig(min_objects=1, max_objects=1))
    masks = np.stack([s.instance_mask == 1 for s in scenes])
    perfect = generated_map_scores(masks.astype(np.float32), masks, (16, 16))
    assert perfect["objects"] == 16 and perfect["miou"] > 0.9
    assert perfect["miou"] > perfect["latent_grid_ceiling"] > max(perfect["baselines"].values())
    shifted = generated_map_scores(np.roll(masks, 20, axis=2).astype(np.float32), masks, (16, 16))
    assert shifted["miou"] < 0.5 * perfect["miou"]  # a map beside the object scores low
    rows = c_rows(perfect | {"found_objects_only": shifted, "min_pixels": 12})
    assert len(rows) == 2 and "≥ 12 px" in rows[1] and f"{shifted['miou']:.3f}" in rows[1]


def test_markdown_table_has_every_part_and_the_guidance_sweep():
    fid = {"recall": 0.61, "colour_accuracy": 0.22}
    c = {
        "objects": 9,
        "miou": 0.111,
        "baselines": {"uniform": 0.02},
        "latent_grid_ceiling": 0.5,
        "latent_grid": "16×16",
    }
    out = {
        "threads": 1,
        "a_fidelity": fid
        | {
            "reference_on_real_renders": {"recall": 0.99, "colour_accuracy": 0.95},
            "by_guidance_scale": {"7.5": fid, "3.0": {"recall": 0.7, "colour_accuracy": 0.1}},
        },
        "b_localisation": {
            "strength": 0.15,
            "miou": 0.444,
            "baselines": {"uniform": 0.05},
            "latent_grid_ceiling": 0.77,
            "by_strength": {0.15: {"microsd": 0.444, "random_weights": 0.05}},
            "by_resolution": {1: 0.48},
        },
        "c_generated_maps_vs_segmenter": c | {"found_objects_only": c | {"miou": 0.222}, "min_pixels": 12},
        "d_speed_images_per_s": 3.21,
        "d_speed_images_per_s_no_guidance": 6.54,
    }
    table = markdown(out)
    for number in ("0.610", "0.220", "0.444", "0.770", "0.111", "0.222", "3.21", "6.54", "0.990", "0.480"):
        assert number in table, number
    assert "1 thread |" in table
    sweep = [line for line in table.splitlines() if line.startswith("| 3.0 |") or line.startswith("| 7.5 |")]
    assert sweep == ["| 3.0 | 0.700 | 0.100 |", "| 7.5 | 0.610 | 0.220 |"]  # sorted by scale


def test_own_vs_other_mass_tells_a_swap_from_a_hit():
    a = np.zeros((8, 8), bool)
    a[:4] = True
    b = ~a
    hit = own_vs_other_mass([[(a.astype(float), a), (b.astype(float), b)]])
    assert (
        hit["maps"] == 2
        and hit["mass_in_own_mask"] == 1.0
        and hit["mass_in_other_mask"] == 0.0
        and hit["own_larger"] == 1.0
    )
    swapped = own_vs_other_mass([[(b.astype(float), a), (a.astype(float), b)]])
    assert swapped["mass_in_own_mask"] == 0.0 and swapped["own_larger"] == 0.0
    assert own_vs_other_mass([]) == {"maps": 0}
