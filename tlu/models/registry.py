"""Models are built from config by name, so a checkpoint's config.json rebuilds its architecture."""

import jax.numpy as jnp

from tlu.models.cnn import SmallCNN
from tlu.models.model import Model
from tlu.models.resnet import ResNet

BACKBONES = {
    'cnn': lambda c: SmallCNN(widths=tuple(c.get('widths', (64, 128))),
                              features=c.get('features', 512), use_bn=c.get('use_bn', True),
                              dtype=jnp.dtype(c.get('dtype', 'float32'))),
    'resnet18': lambda c: ResNet(18, stem=c.get('stem', 'cifar'), width=c.get('width', 64),
                                 dtype=jnp.dtype(c.get('dtype', 'float32'))),
    'resnet50': lambda c: ResNet(50, stem=c.get('stem', 'imagenet'), width=c.get('width', 64),
                                 dtype=jnp.dtype(c.get('dtype', 'float32'))),
}


def build_model(cfg):
  """cfg: mapping with `name` in BACKBONES; optional num_classes, projector, domain_head, head_l2_scale."""
  name = cfg['name']
  if name not in BACKBONES:
    raise ValueError(f'unknown model {name!r}; known: {sorted(BACKBONES)}')
  get = cfg.get
  tup = lambda v: tuple(v) if v else None
  return Model(backbone=BACKBONES[name](cfg), num_classes=get('num_classes') or None,
               projector=tup(get('projector')), domain_head=tup(get('domain_head')),
               head_l2_scale=get('head_l2_scale') or None)
