"""StableSemantics: capture, store and analyse what text-to-image diffusion models attend to."""

__version__ = "0.1.0"
