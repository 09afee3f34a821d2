"""Model = backbone + named heads: the parameter tree is {'backbone', <head name>, ...}.

Top-level names are the shared/specific split that transfer works on: surgery
copies `backbone/...`, masks freeze it, new tasks bring a fresh `head`. The
heads are whatever the method declares (`tlu.models.heads.Head`); callers ask
for the heads they use and get nothing else.
"""

import flax.linen as nn
import jax.numpy as jnp

RESERVED = ('features', 'backbone')


class Model(nn.Module):
  """Images in [0, 1], (N, H, W, C) -> {'features': (N, F), <each asked head>: its output}.

  Attributes:
    backbone: a module mapping (images, train) to (N, F) features.
    heads: ((name, tlu.models.heads.Head), ...), applied in this order; a head's
      `input` (an output name or a function of the outputs) sees those computed before
      it, so a caller asking for a head also asks for the heads it reads.
  """
  backbone: nn.Module
  heads: tuple = ()

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
    x = (images.astype(jnp.float32) - 0.5) / 0.25
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
