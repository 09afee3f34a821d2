"""Flax Linen backbones, task heads and the model registry."""

from tlu.models.registry import BACKBONES, build_model  # noqa: F401
