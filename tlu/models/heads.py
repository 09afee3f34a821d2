"""Heads on top of a backbone, declared by the methods that need them.

A `Head` is a hashable spec: the Flax module class and its arguments, and what
the head sees (`input`: the name of an earlier output, e.g. 'projector' for a
predictor, or a function of the outputs so far; default the backbone features). A method that needs e.g. CDAN's features x softmax declares
`Head.of(MLP, dims=(1024, 1), input=my_fn)` and needs no edit of `Model`.
Every head module is called as `module(x, train=...)`.
"""

import dataclasses
from typing import Callable, Optional

import flax.linen as nn

from tlu.models.norm import BatchNorm
from tlu.ops import l2_normalize


@dataclasses.dataclass(frozen=True)
class Head:
  module: type
  kwargs: tuple = ()
  input: Optional[Callable] = None

  @classmethod
  def of(cls, module, input=None, **kwargs):  # pylint: disable=redefined-builtin
    """Head.of(MLP, dims=(512, 128)); kwargs must be hashable (tuples, not lists)."""
    return cls(module, tuple(sorted(kwargs.items())), input)

  def build(self):
    return self.module(**dict(self.kwargs))


class Linear(nn.Dense):
  """A Dense classifier; with `l2_scale` s it sees s * x / ||x|| (a cosine classifier).

  (N, F) -> (N, features). Parameters `kernel` (F, features) and `bias`, as nn.Dense.
  """
  l2_scale: Optional[float] = None

  @nn.compact
  def __call__(self, x, train=False):  # pylint: disable=arguments-renamed
    del train
    if self.l2_scale:
      x = self.l2_scale * l2_normalize(x)
    return super().__call__(x)


class MLP(nn.Module):
  """Dense -> [BatchNorm] -> ReLU ... -> Dense; `dims` are the output widths of each layer.

  (N, F) -> (N, dims[-1]). Layers are named dense{i} (and bn{i}).
  """
  dims: tuple
  batch_norm: bool = False

  @nn.compact
  def __call__(self, x, train=False):
    for i, d in enumerate(self.dims):
      x = nn.Dense(d, name=f'dense{i}')(x)
      if i < len(self.dims) - 1:
        if self.batch_norm:
          x = BatchNorm(momentum=0.9, name=f'bn{i}')(x, train)
        x = nn.relu(x)
    return x


def classifier(num_classes, l2_scale=None):
  return Head.of(Linear, features=int(num_classes), l2_scale=l2_scale or None)


def mlp(dims, batch_norm=False, input_name=None):
  return Head.of(MLP, input=input_name, dims=tuple(int(d) for d in dims),
                 batch_norm=bool(batch_norm))
