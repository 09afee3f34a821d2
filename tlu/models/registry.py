"""Models are built from config by name, so a checkpoint's config.json rebuilds its architecture.

The model config names the backbone and its sizes only; the heads come from the
method that trains it (`tlu.methods`), so a run's `config.model` rebuilds the
backbone whatever method made it. It also carries the input convention the backbone
expects (`input_range`, `input_mean`, `input_std`: `tlu.models.model.normalize`; tlu's
(x - 0.5) / 0.25 when absent) and, for a ViT, the `image_size` its position embeddings
are made for, so a converted checkpoint sees its inputs as it was trained on them.
"""

import jax.numpy as jnp

from tlu.models import vit
from tlu.models.cnn import SmallCNN
from tlu.models.mlp import MLPBackbone
from tlu.models.model import Model, input_convention
from tlu.models.resnet import ResNet


def _vit(name, c):
  """ViT of variant `name` ('S/16'); a config key of the same name overrides a size."""
  sizes = {k: int(c.get(k, v)) for k, v in vit.variant(name).items()}
  return vit.ViT(**sizes, image_size=int(c.get('image_size', 224)), pool=c.get('pool', 'tok'),
                 posemb=c.get('posemb', 'learn'),
                 representation_size=int(c.get('representation_size', 0)),
                 approximate_gelu=bool(c.get('approximate_gelu', True)),
                 dtype=jnp.dtype(c.get('dtype', 'float32')))


def _at_least_one(features):
  if features < 1:
    raise ValueError(f'model.features={features}: must be an integer >= 1 for this model')
  return features


BACKBONES = {
    'mlp': lambda c: MLPBackbone(widths=tuple(c.get('widths', (256,))),
                                 features=_at_least_one(c.get('features', 128)),
                                 use_bn=c.get('use_bn', True)),
    'cnn': lambda c: SmallCNN(widths=tuple(c.get('widths', (64, 128))),
                              features=c.get('features', 512), use_bn=c.get('use_bn', True),
                              dtype=jnp.dtype(c.get('dtype', 'float32')),
                              pool=c.get('pool', 'flatten'), kernel_size=c.get('kernel_size', 3),
                              padding=c.get('padding', 'SAME'),
                              hidden=tuple(c.get('hidden', ())), conv=c.get('conv', 'xla')),
    **{f'resnet{d}': (lambda c, d=d: ResNet(
        d, stem=c.get('stem', 'cifar' if d == 18 else 'imagenet'), width=c.get('width', 64),
        dtype=jnp.dtype(c.get('dtype', 'float32')), conv=c.get('conv', 'xla')))
        for d in (18, 34, 50, 101)},
    **{f'vit_{size.lower()}{patch}': (lambda c, v=f'{size}/{patch}': _vit(v, c))
       for size in vit.VARIANTS for patch in (16, 32)},
}


def build_model(cfg, heads=None):
  """cfg: mapping with `name` in BACKBONES and the backbone's sizes; heads: {name: Head} or pairs."""
  name = cfg['name']
  if name not in BACKBONES:
    raise ValueError(f'unknown model {name!r}; known: {sorted(BACKBONES)}')
  heads = tuple((heads or {}).items()) if isinstance(heads, dict) or heads is None else tuple(heads)
  return Model(backbone=BACKBONES[name](cfg), heads=heads, **input_convention(cfg))
