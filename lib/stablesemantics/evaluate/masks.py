"""Map → mask: global, Otsu and DiffuMask's adaptive thresholds, CRF or morphological refinement."""

from __future__ import annotations

import numpy as np

from stablesemantics.capture.maps import minmax_scale_maps

# The segmentation benchmark (notebooks 05 and 06). Maps are per-object attention maps
# (``ObjectMaps``) or any ``(n, H, W)`` float array; masks are boolean ``(n, H, W)``.
# Every map is min-max normalised on its own before a threshold is applied, so thresholds
# are fractions of the map's own range.

#: DiffuMask's sweep of binarisation thresholds (Wu et al. 2023, Fig. 3: the best threshold of a
#: class lies between about 0.35 and 0.55).
ADAPTIVE_THRESHOLDS: tuple[float, ...] = (0.35, 0.40, 0.45, 0.50, 0.55)
BINARISATIONS: tuple[str, ...] = ("global", "otsu", "adaptive")
REFINEMENTS: tuple[str, ...] = ("none", "morph", "crf")


def otsu_threshold(values: np.ndarray, bins: int = 64) -> float:
    """Otsu's threshold of values in [0, 1]: the cut that maximises the between-class variance.

    The mask is ``values >= threshold``. A constant input has no cut; 0.5 is returned.

    >>> v = np.array([0.1] * 6 + [0.2] * 2 + [0.8] * 3 + [0.9])
    >>> t = otsu_threshold(v)
    >>> 0.2 < t <= 0.8, int((v >= t).sum())
    (True, 4)
    """
    v = np.clip(np.asarray(values, np.float64).ravel(), 0.0, 1.0)
    hist, edges = np.histogram(v, bins=bins, range=(0.0, 1.0))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)[:-1].astype(np.float64)  # below the cut at edges[k + 1]
    w1 = v.size - w0
    s0 = np.cumsum(hist * centres)[:-1]
    mu0 = s0 / np.maximum(w0, 1)
    mu1 = (np.sum(hist * centres) - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    if not np.any(between > 0):
        return 0.5
    return float(edges[int(np.argmax(between)) + 1])


def crf_available() -> bool:
    """Whether the dense CRF (``pydensecrf2``, imported as ``pydensecrf``) can be used."""
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        return False
    return True


def dense_crf(
    image: np.ndarray,
    mask: np.ndarray,
    confidence: float = 0.7,
    iterations: int = 5,
    sxy_gaussian: float | None = None,
    sxy_bilateral: float | None = None,
    srgb: float = 13.0,
    compat_gaussian: float = 3.0,
    compat_bilateral: float = 10.0,
) -> np.ndarray:
    """Refine a binary mask of an image with a fully connected CRF (Krähenbühl & Koltun 2011).

    The unary term believes the mask with probability ``confidence``; the pairwise terms pull
    nearby pixels (Gaussian kernel) and nearby pixels of similar colour (bilateral kernel) to the
    same label. Kernel widths default to fractions of the image size (``sxy_gaussian`` = size/64,
    ``sxy_bilateral`` = size/8 pixels), so the same call suits 64-pixel and 512-pixel images.
    Needs ``pydensecrf2``; see :func:`crf_available` and :func:`refine_masks`.
    """
    import pydensecrf.densecrf as dcrf

    image = np.ascontiguousarray(np.asarray(image, np.uint8)[..., :3])
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    if image.shape[:2] != (h, w):
        raise ValueError(f"image {image.shape[:2]} and mask {(h, w)} sizes differ")
    size = max(h, w)
    sxy_gaussian = max(size / 64, 1.0) if sxy_gaussian is None else sxy_gaussian
    sxy_bilateral = max(size / 8, 1.0) if sxy_bilateral is None else sxy_bilateral
    prob = np.where(mask, confidence, 1.0 - confidence).astype(np.float32)
    unary = -np.log(np.stack([1.0 - prob, prob]).reshape(2, -1))
    crf = dcrf.DenseCRF2D(w, h, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(unary.astype(np.float32)))
    crf.addPairwiseGaussian(sxy=sxy_gaussian, compat=compat_gaussian)
    crf.addPairwiseBilateral(sxy=sxy_bilateral, srgb=srgb, rgbim=image, compat=compat_bilateral)
    q = np.asarray(crf.inference(iterations)).reshape(2, h, w)
    return q[1] > q[0]


def morphological_refine(mask: np.ndarray, radius: int | None = None, keep: float = 0.1) -> np.ndarray:
    """Refine a binary mask by shape alone: open, close, fill holes, drop small components.

    The fallback when the dense CRF is not installed. ``radius`` of the square structuring element
    defaults to about 1/32 of the image size; components smaller than ``keep`` times the largest
    one are removed (an object may still come out as several parts).

    >>> m = np.zeros((16, 16), bool); m[4:12, 4:12] = True; m[7, 7] = False; m[0, 15] = True
    >>> r = morphological_refine(m)
    >>> bool(r[7, 7]), bool(r[0, 15]), int(r.sum())
    (True, False, 64)
    """
    from scipy import ndimage

    mask = np.asarray(mask, bool)
    if not mask.any():
        return mask.copy()
    radius = max(1, round(max(mask.shape) / 32)) if radius is None else int(radius)
    structure = np.ones((2 * radius + 1, 2 * radius + 1), bool)
    out = ndimage.binary_opening(mask, structure)
    out = ndimage.binary_closing(out, structure, border_value=0) | out
    out = ndimage.binary_fill_holes(out)
    labels, n = ndimage.label(out)
    if n > 1:
        sizes = np.bincount(labels.ravel())[1:]
        out = np.isin(labels, 1 + np.flatnonzero(sizes >= keep * sizes.max()))
    return out


def resolve_refinement(method: str) -> str:
    """``"auto"`` → ``"crf"`` when the dense CRF is installed, else ``"morph"``; others unchanged."""
    if method not in (*REFINEMENTS, "auto"):
        raise ValueError(f"refinement must be one of {(*REFINEMENTS, 'auto')}, got {method!r}")
    if method == "auto":
        return "crf" if crf_available() else "morph"
    return method


def refine_masks(masks: np.ndarray, images: np.ndarray | None = None, method: str = "auto") -> np.ndarray:
    """Refine ``(n, H, W)`` binary masks: ``"crf"`` (needs ``images``), ``"morph"``, ``"none"`` or ``"auto"``.

    ``images`` is ``(n, H, W, 3)`` uint8, one per mask (several masks of one image: repeat it).
    ``"crf"`` raises ImportError when ``pydensecrf2`` is missing; ``"auto"`` falls back to ``"morph"``.
    """
    method = resolve_refinement(method)
    masks = np.asarray(masks, bool)
    if method == "none":
        return masks.copy()
    if method == "morph":
        return np.stack([morphological_refine(m) for m in masks]) if len(masks) else masks.copy()
    if images is None:
        raise ValueError("CRF refinement needs the images")
    if len(images) != len(masks):
        raise ValueError(f"{len(images)} images for {len(masks)} masks")
    return np.stack([dense_crf(im, m) for im, m in zip(images, masks)]) if len(masks) else masks.copy()


def binarise_maps(
    maps: np.ndarray,
    method: str = "otsu",
    threshold: float = 0.5,
    thresholds=ADAPTIVE_THRESHOLDS,
    images: np.ndarray | None = None,
    select_with: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Map → mask, for ``(n, H, W)`` maps: returns boolean masks and the threshold used for each.

    Methods (each map is min-max normalised first):

    * ``"global"``: one threshold for every map;
    * ``"otsu"``: each map's own Otsu threshold (:func:`otsu_threshold`);
    * ``"adaptive"``: DiffuMask's adaptive threshold. For each threshold of the sweep
      (``thresholds``, 0.35–0.55) the binary mask is refined (``select_with``: the CRF, which needs
      ``images``, else morphology) and the threshold whose mask agrees best (IoU) with its own
      refinement is kept: the cut that the image's colours (or the mask's shape) confirm. DiffuMask
      refines with AffinityNet's random walk; a dense CRF plays that role here.

    >>> maps = np.zeros((1, 4, 4)); maps[0, :2, :2] = 1.0; maps[0, 2:, 2:] = 0.4
    >>> int(binarise_maps(maps, "global", threshold=0.3)[0].sum()), int(binarise_maps(maps, "otsu")[0].sum())
    (8, 4)
    """
    if method not in BINARISATIONS:
        raise ValueError(f"method must be one of {BINARISATIONS}, got {method!r}")
    norm = minmax_scale_maps(maps)
    n = len(norm)
    if method == "global":
        return norm >= threshold, np.full(n, float(threshold))
    if method == "otsu":
        used = np.array([otsu_threshold(m) for m in norm])
        return norm >= used[:, None, None], used
    thresholds = np.asarray(thresholds, np.float64)
    select_with = resolve_refinement(select_with)
    if select_with == "none":
        raise ValueError("the adaptive threshold needs a refinement to select with (crf, morph or auto)")
    if select_with == "crf" and images is None:
        select_with = "morph"
    scores = np.zeros((n, len(thresholds)))
    for j, t in enumerate(thresholds):
        cand = norm >= t
        refined = refine_masks(cand, images, select_with)
        inter = (cand & refined).sum((1, 2))
        union = (cand | refined).sum((1, 2))
        scores[:, j] = np.where(union == 0, 0.0, inter / np.maximum(union, 1))
    used = thresholds[np.argmax(scores, axis=1)]
    return norm >= used[:, None, None], used
