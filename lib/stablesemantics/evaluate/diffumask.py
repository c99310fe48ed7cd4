"""DiffuMask: synthetic image–mask pairs from attention, and segmenters trained on them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stablesemantics import world
from stablesemantics.capture.maps import minmax_scale_maps
from stablesemantics.evaluate.masks import ADAPTIVE_THRESHOLDS, binarise_maps, refine_masks
from stablesemantics.evaluate.scores import semantic_scores
from stablesemantics.evaluate.segmenter import SmallSegmenter, predict_classes
from stablesemantics.images import resize_images


def class_ids(classes) -> np.ndarray:
    """Class names → ids of the class masks (``world.CLASSES`` index + 1; 0 is the background)."""
    return np.asarray([world.CLASS_INDEX[c] + 1 for c in classes], np.int64)


def segmenter_object_masks(class_masks: np.ndarray, classes, image_index) -> np.ndarray:
    """Each object's mask from predicted class masks: the pixels of its image given its class."""
    return np.asarray(class_masks)[np.asarray(image_index)] == class_ids(classes)[:, None, None]


def synthetic_class_masks(
    images: np.ndarray,
    maps: np.ndarray,
    classes,
    image_index,
    method: str = "adaptive",
    refinement: str = "auto",
    threshold: float = 0.5,
    thresholds=ADAPTIVE_THRESHOLDS,
) -> np.ndarray:
    """DiffuMask's annotation step: class masks ``(n_images, H, W)`` int16 from object maps.

    Each object map is binarised (``method``) and refined (``refinement``) into the object's mask;
    where the masks of two objects overlap, the object whose normalised map is higher wins; the
    rest is background (0).
    """
    images = np.asarray(images)
    image_index = np.asarray(image_index)
    per_map_images = images[image_index]
    binary = binarise_maps(maps, method, threshold, thresholds, per_map_images)[0]
    binary = refine_masks(binary, per_map_images, refinement)
    score = np.where(binary, minmax_scale_maps(maps), -1.0)
    out = np.zeros(images.shape[:3], np.int16)
    best = np.full(images.shape[:3], -1.0)
    ids = class_ids(classes)
    for k in range(len(maps)):
        i = image_index[k]
        win = score[k] > best[i]
        out[i][win] = ids[k]
        best[i][win] = score[k][win]
    return out


def resize_pairs(images: np.ndarray, masks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Resize ``(n, H, W, 3)`` images (area averaging) and ``(n, H, W)`` class masks (nearest) to ``size``²."""

    images, masks = np.asarray(images), np.asarray(masks)
    if images.shape[1:3] == (size, size):
        return images, masks
    m = torch.from_numpy(masks.astype(np.float32))[:, None]
    m = F.interpolate(m, size=(size, size), mode="nearest")[:, 0].numpy().astype(masks.dtype)
    return resize_images(images, size), m


def evaluate_segmenter(model: SmallSegmenter, images: np.ndarray, masks: np.ndarray) -> dict:
    """:func:`semantic_scores` of a segmenter's predictions on images with true class masks."""
    return semantic_scores(predict_classes(model, images), masks)
