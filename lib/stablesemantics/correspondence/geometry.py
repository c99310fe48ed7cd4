"""Pixel geometry of correspondence: crops, their point and map transforms, Gaussian targets, (soft) argmax.

Points are ``(x, y)`` in continuous pixel coordinates of a square ``size × size`` image (pixel
``(r, c)`` covers ``[c, c+1) × [r, r+1)``, as MicroWorld's keypoints). A crop is a square box
``(x0, y0, side)`` in those coordinates; cropping resamples it back to ``size × size`` (bilinear,
``grid_sample`` with ``align_corners=False``), optionally mirrored left–right.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def crop_boxes(
    n: int, size: int, fraction: float, generator: torch.Generator, corners_first: bool = False
) -> torch.Tensor:
    """``n`` square crop boxes ``(x0, y0, side)`` of side ``fraction * size`` inside the image, ``(n, 3)``.

    Positions are uniform; with ``corners_first`` the first four boxes sit in the four corners.

    >>> crop_boxes(5, 64, 0.5, torch.Generator().manual_seed(0), corners_first=True)[:4, :2].tolist()
    [[0.0, 0.0], [32.0, 0.0], [0.0, 32.0], [32.0, 32.0]]
    """
    side = float(size) * fraction
    room = float(size) - side
    xy = torch.rand((n, 2), generator=generator, dtype=torch.float64) * room
    if corners_first:
        corners = torch.tensor([[0.0, 0.0], [room, 0.0], [0.0, room], [room, room]], dtype=torch.float64)
        k = min(n, 4)
        xy[:k] = corners[:k]
    return torch.cat([xy, torch.full((n, 1), side, dtype=torch.float64)], 1).float()


def crop_images(images: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor | None = None) -> torch.Tensor:
    """Crops of ``images`` ``(n, C, S, S)`` at ``boxes`` ``(n, 3)``, resampled to ``S × S``, mirrored where ``flips``.

    >>> x = torch.arange(16.0).view(1, 1, 4, 4)
    >>> crop_images(x, torch.tensor([[0.0, 0.0, 4.0]]), torch.tensor([True]))[0, 0, 0].tolist()
    [3.0, 2.0, 1.0, 0.0]
    """
    n, _, h, w = images.shape
    x0, y0, side = boxes[:, 0], boxes[:, 1], boxes[:, 2]
    theta = torch.zeros((n, 2, 3), dtype=images.dtype, device=images.device)
    sx = side / w
    if flips is not None:
        sx = torch.where(flips.to(boxes.device), -sx, sx)
    theta[:, 0, 0] = sx
    theta[:, 0, 2] = (2 * x0 + side) / w - 1
    theta[:, 1, 1] = side / h
    theta[:, 1, 2] = (2 * y0 + side) / h - 1
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def points_to_crop(
    points: torch.Tensor, boxes: torch.Tensor, size: int, flips: torch.Tensor | None = None
) -> torch.Tensor:
    """Image points ``(n, 2)`` in the coordinates of their crops (resampled to ``size``), mirrored where ``flips``.

    >>> points_to_crop(torch.tensor([[16.0, 8.0]]), torch.tensor([[0.0, 0.0, 32.0]]), 64, torch.tensor([True])).tolist()
    [[32.0, 16.0]]
    """
    out = (points - boxes[:, :2]) / boxes[:, 2:3] * size
    if flips is not None:
        out[:, 0] = torch.where(flips.to(out.device), size - out[:, 0], out[:, 0])
    return out


def inside_crops(points: torch.Tensor, boxes: torch.Tensor, margin: float = 0.0) -> torch.Tensor:
    """``(n_points, n_boxes)`` bool: point inside box, at least ``margin`` × side from its edges.

    ``boxes`` is ``(n_boxes, 3)`` (the same for every point) or ``(n_points, n_boxes, 3)``.
    """
    rel = (points[:, None, :] - boxes[..., :2]) / boxes[..., 2:3]
    return ((rel >= margin) & (rel <= 1 - margin)).all(-1)


def maps_from_crops(maps: torch.Tensor, boxes: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps ``(n, S', S')`` computed on (unmirrored) crops, placed back on the ``size × size`` image.

    Returns the maps in image coordinates and the mask of pixels each crop covers (both ``(n, size, size)``).
    """
    n = maps.shape[0]
    x0, y0, side = boxes[:, 0], boxes[:, 1], boxes[:, 2]
    theta = torch.zeros((n, 2, 3), dtype=maps.dtype, device=maps.device)
    theta[:, 0, 0] = size / side
    theta[:, 0, 2] = (size - 2 * x0) / side - 1
    theta[:, 1, 1] = size / side
    theta[:, 1, 2] = (size - 2 * y0) / side - 1
    grid = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
    placed = F.grid_sample(maps[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
    covered = (grid.abs() <= 1).all(-1).to(maps.dtype)
    return placed * covered, covered


def gaussian_maps(points: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """Unnormalised Gaussians (peak 1) of width ``sigma`` pixels at ``points`` ``(n, 2)``, on pixel centres: ``(n, size, size)``.

    >>> g = gaussian_maps(torch.tensor([[2.5, 1.5]]), 4, 1.0)
    >>> g[0, 1, 2].item(), tuple(g.shape)
    (1.0, (1, 4, 4))
    """
    c = torch.arange(size, dtype=points.dtype, device=points.device) + 0.5
    dx = c[None, None, :] - points[:, 0, None, None]
    dy = c[None, :, None] - points[:, 1, None, None]
    return torch.exp(-(dx**2 + dy**2) / (2 * sigma**2))


def argmax_points(maps: torch.Tensor) -> torch.Tensor:
    """The pixel centre ``(x, y)`` of each map's maximum, ``(n, 2)``.

    >>> m = torch.zeros(1, 4, 4); m[0, 3, 1] = 1
    >>> argmax_points(m).tolist()
    [[1.5, 3.5]]
    """
    n, h, w = maps.shape
    flat = maps.reshape(n, -1).argmax(1)
    return torch.stack([(flat % w).float() + 0.5, (flat // w).float() + 0.5], 1)


def soft_argmax_points(maps: torch.Tensor, beta: float) -> torch.Tensor:
    """Expected pixel centre under ``softmax(beta · map / max(map))``, ``(n, 2)``: a sub-pixel argmax."""
    n, h, w = maps.shape
    scaled = maps.reshape(n, -1) / maps.reshape(n, -1).amax(1, keepdim=True).clamp_min(1e-12)
    weights = torch.softmax(beta * scaled, 1).view(n, h, w)
    xs = torch.arange(w, dtype=weights.dtype, device=weights.device) + 0.5
    ys = torch.arange(h, dtype=weights.dtype, device=weights.device) + 0.5
    return torch.stack([(weights.sum(1) * xs).sum(1), (weights.sum(2) * ys).sum(1)], 1)
