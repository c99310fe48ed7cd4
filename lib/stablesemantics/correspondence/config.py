"""The knobs of the correspondence methods: prompt-embedding optimisation (Hedlin et al.) and DIFT."""

from __future__ import annotations

from dataclasses import dataclass

from stablesemantics.capture.config import CaptureConfig


@dataclass(frozen=True)
class CorrespondenceConfig:
    """Settings of the prompt-embedding optimisation and of its transfer to a target image.

    Defaults are the paper's (Hedlin et al. 2023, code ``ubc-vision/LDM_correspondences``) as far as
    they carry over to any model; the notebook scales them down for the CPU.

    Attributes:
        timestep: the noise level of the image, 0–999 (the paper: step 8 from the clean end of
            50 DDIM steps, t = 141).
        blocks, resolutions: the cross-attention layers whose map is fitted (a
            :class:`~stablesemantics.capture.CaptureConfig` selection); the paper uses the 16×16
            up-block layers of SD (factor 4 of a 64×64 latent). MicroSD's latent is 16×16, so its
            16×16 up-block layers are factor 1.
        token: position of the token whose attention is fitted (1: the first after BOS).
        steps, lr: Adam steps and learning rate of each optimisation (paper: 129, 2.4e-3).
        restarts: independent random initialisations per query point, their target maps averaged
            (paper: 5).
        sigma: width of the target Gaussian as a fraction of the image side (paper: 27.97 px of 512).
        crop_fraction: side of the random crops as a fraction of the image (paper: 93 %).
        train_crops: crops of the source image encoded once and drawn from at every step (the
            paper crops afresh each step; a bank of encoded crops makes a step one UNet call).
        flip_prob: probability that a step sees the source crop mirrored, with the point mirrored
            (the authors' code: 0.5).
        n_crops: crops of the target image whose maps are averaged at inference (paper: 20); the
            first four sit in the corners, the rest at seeded random places.
        loss: ``"mse"`` (the paper: MSE against the peak-1 Gaussian) or ``"kl"`` (the map and the
            Gaussian as distributions; see :func:`~stablesemantics.correspondence.optimise.map_loss`).
        init_scale: standard deviation of the random initial embedding (the paper: ``randn``).
        soft_beta: sharpness of the soft-argmax on the max-normalised map.
        batch_size: query points × restarts optimised together in one UNet batch.
        seed: seeds crops, flips, noise and initial embeddings.
    """

    timestep: int = 141
    blocks: tuple[str, ...] = ("up",)
    resolutions: tuple[int, ...] | None = (4,)
    token: int = 1
    steps: int = 129
    lr: float = 2.4e-3
    restarts: int = 5
    sigma: float = 0.055
    crop_fraction: float = 0.93
    train_crops: int = 16
    flip_prob: float = 0.5
    n_crops: int = 20
    loss: str = "mse"
    init_scale: float = 1.0
    soft_beta: float = 50.0
    batch_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.timestep < 1000:
            raise ValueError(f"timestep must be in [0, 1000), got {self.timestep}")
        if self.steps < 0 or self.restarts < 1 or self.n_crops < 1 or self.train_crops < 1:
            raise ValueError("steps >= 0, restarts >= 1, n_crops >= 1 and train_crops >= 1 are needed")
        if not 0 < self.crop_fraction <= 1:
            raise ValueError(f"crop_fraction must be in (0, 1], got {self.crop_fraction}")
        if not 0 <= self.flip_prob <= 1:
            raise ValueError(f"flip_prob must be in [0, 1], got {self.flip_prob}")
        if self.sigma <= 0 or self.lr <= 0 or self.batch_size < 1:
            raise ValueError("sigma, lr and batch_size must be positive")
        if self.loss not in ("mse", "kl"):
            raise ValueError(f"loss must be 'mse' or 'kl', got {self.loss!r}")
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if self.resolutions is not None:
            object.__setattr__(self, "resolutions", tuple(int(r) for r in self.resolutions))

    @property
    def capture(self) -> CaptureConfig:
        """The capture selecting the fitted layers.

        >>> CorrespondenceConfig(resolutions=(1,)).capture.resolutions
        (1,)
        """
        return CaptureConfig(blocks=self.blocks, resolutions=self.resolutions)


@dataclass(frozen=True)
class DiftConfig:
    """DIFT (Tang et al. 2023): nearest neighbour of UNet up-block features of a noised image.

    Attributes:
        up_block: index of the UNet up block whose output is the feature map (DIFT on SD: 1).
        timestep: the noise level, 0–999 (DIFT on SD: 261).
        ensemble: noise draws whose features are averaged (DIFT: 8).
        prompt: the text condition (DIFT's semantic correspondence uses the empty prompt).
        seed: seeds the noise.
    """

    up_block: int = 1
    timestep: int = 261
    ensemble: int = 8
    prompt: str = ""
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.timestep < 1000:
            raise ValueError(f"timestep must be in [0, 1000), got {self.timestep}")
        if self.up_block < 0 or self.ensemble < 1:
            raise ValueError("up_block >= 0 and ensemble >= 1 are needed")
