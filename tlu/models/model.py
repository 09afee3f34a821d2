"""Model = backbone + named heads: the parameter tree is {'backbone', <head name>, ...}.

Top-level names are the shared/specific split that transfer works on: surgery
copies `backbone/...`, masks freeze it, new tasks bring a fresh `head`. The
heads are whatever the method declares (`tlu.models.heads.Head`); callers ask
for the heads they use and get nothing else.
"""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from tlu import checks

RESERVED = ('features', 'backbone')
# tlu's own input convention: images in [0, 1] normalised by (x - 0.5) / 0.25.
INPUT_RANGES = {'input_std': checks.POSITIVE}   # every backbone's input convention
DEFAULT_INPUT = {'input_range': (0.0, 1.0), 'input_mean': (0.5,), 'input_std': (0.25,)}


def input_convention(cfg):
  """The input keys of a model config, tlu's defaults where absent: {'input_range': (lo, hi),
  'input_mean': per-channel or one value, 'input_std': same} (see `Model`)."""
  return {k: tuple(float(v) for v in cfg.get(k, d)) for k, d in DEFAULT_INPUT.items()}


def normalize(images, input_range=(0.0, 1.0), input_mean=(0.5,), input_std=(0.25,)):
  """images (N, H, W, C) in [0, 1] -> (lo + (hi - lo) * images - mean) / std, float32.

  mean and std hold one value or one per channel; with per-channel values and another
  number of channels (a grey image into an RGB model) their averages are used.
  """
  x = images.astype(jnp.float32)
  lo, hi = input_range
  if (lo, hi) != (0.0, 1.0):
    x = lo + (hi - lo) * x
  stats = []
  for values in (input_mean, input_std):
    values = np.asarray(values, np.float32)
    if values.size not in (1, x.shape[-1]):
      values = values.mean(keepdims=True)
    stats.append(values if values.size > 1 else values.reshape(()))
  return (x - stats[0]) / stats[1]


class Model(nn.Module):
  """Images in [0, 1], (N, H, W, C) -> {'features': (N, F), <each asked head>: its output}.

  Attributes:
    backbone: a module mapping (images, train) to (N, F) features.
    heads: ((name, tlu.models.heads.Head), ...), applied in this order; a head's
      `input` (an output name or a function of the outputs) sees those computed before
      it, so a caller asking for a head also asks for the heads it reads.
    input_range, input_mean, input_std: the input convention the backbone was trained
      with, applied to the [0, 1] images before the backbone (`normalize`): tlu's own
      (0, 1), 0.5, 0.25; torchvision's (0, 1) with the ImageNet channel statistics;
      big_vision's (-1, 1), 0, 1. A converted checkpoint's config records its own.
  """
  backbone: nn.Module
  heads: tuple = ()
  input_range: tuple = DEFAULT_INPUT['input_range']
  input_mean: tuple = DEFAULT_INPUT['input_mean']
  input_std: tuple = DEFAULT_INPUT['input_std']

  def setup(self):
    for name, head in self.heads:
      if name in RESERVED or hasattr(type(self), name):
        raise ValueError(f'head name {name!r} is reserved')
      setattr(self, name, head.build())

  @property
  def head_names(self):
    return tuple(name for name, _ in self.heads)

  def __call__(self, images, train=False, heads=()):
    """`train`: bool or `tlu.models.norm.Mode`; `heads`: names of the heads to run (init runs all)."""
    x = normalize(images, self.input_range, self.input_mean, self.input_std)
    out = {'features': self.backbone(x, train=train)}
    specs = dict(self.heads)
    for name in (self.head_names if self.is_initializing() else heads):
      spec = specs[name]
      if spec.input is None:
        inputs = out['features']
      else:
        inputs = out[spec.input] if isinstance(spec.input, str) else spec.input(out)
      out[name] = self.apply_head(name, inputs, train)
    return out

  def apply_head(self, name, x, train=False):
    """One named head on any input (e.g. reversed-gradient features): `model.apply(v, name, x,
    method='apply_head')`."""
    return getattr(self, name)(x, train=train)
