"""Flax Linen backbones, task heads and the model registry.

`MODELS`: backbone name -> builder `(model config) -> nn.Module`; each backbone module
registers its own (`@MODELS.register('cnn')`), so a new backbone is one file.
"""

from tlu.registry import Registry

MODELS = Registry('model', 'tlu.models')

from tlu.models.registry import build_model  # noqa: E402,F401  (after MODELS: no cycle)
