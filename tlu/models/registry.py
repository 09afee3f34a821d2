"""Models are built from config by name, so a checkpoint's config.json rebuilds its architecture.

The model config names the backbone and its sizes only; the heads come from the
method that trains it (`tlu.methods`), so a run's `config.model` rebuilds the
backbone whatever method made it.
"""

import jax.numpy as jnp

from tlu.models.cnn import SmallCNN
from tlu.models.model import Model
from tlu.models.resnet import ResNet

BACKBONES = {
    'cnn': lambda c: SmallCNN(widths=tuple(c.get('widths', (64, 128))),
                              features=c.get('features', 512), use_bn=c.get('use_bn', True),
                              dtype=jnp.dtype(c.get('dtype', 'float32')),
                              pool=c.get('pool', 'flatten')),
    'resnet18': lambda c: ResNet(18, stem=c.get('stem', 'cifar'), width=c.get('width', 64),
                                 dtype=jnp.dtype(c.get('dtype', 'float32'))),
    'resnet50': lambda c: ResNet(50, stem=c.get('stem', 'imagenet'), width=c.get('width', 64),
                                 dtype=jnp.dtype(c.get('dtype', 'float32'))),
}


def build_model(cfg, heads=None):
  """cfg: mapping with `name` in BACKBONES and the backbone's sizes; heads: {name: Head} or pairs."""
  name = cfg['name']
  if name not in BACKBONES:
    raise ValueError(f'unknown model {name!r}; known: {sorted(BACKBONES)}')
  heads = tuple((heads or {}).items()) if isinstance(heads, dict) or heads is None else tuple(heads)
  return Model(backbone=BACKBONES[name](cfg), heads=heads)
