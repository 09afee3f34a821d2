"""Train mode with frozen subtrees, and the BatchNorm that honours it.

"Frozen means frozen": a frozen BatchNorm layer normalises with its
running averages and never updates them. Which layers are frozen is decided by
the same `/`-joined path regexes that freeze the parameters in the optimizer
(`tlu.transfer.freeze`), so one freezing spec drives both.
"""

import dataclasses
import re

import flax.linen as nn


@dataclasses.dataclass(frozen=True)
class Mode:
  """What models receive as `train`: truthy in training, with the frozen path regexes.

  Backbones and heads pass it down unchanged; `BatchNorm` below decides per layer.
  `bool(Mode(...))` is `train`, so code that only needs a bool (dropout) works as is.
  """
  train: bool = True
  frozen: tuple = ()

  def __bool__(self):
    return self.train

  def freezes(self, path):
    return any(re.fullmatch(p, path) for p in self.frozen)


def train_mode(frozen_patterns=()):
  return Mode(True, tuple(frozen_patterns))


class BatchNorm(nn.BatchNorm):
  """flax BatchNorm called as `bn(x, train)`: running averages when not training or frozen.

  Frozen: its `scale` path (e.g. `backbone/bn0/scale`) full-matches a regex of `train.frozen`.
  """

  @nn.compact
  def __call__(self, x, train=False):  # pylint: disable=arguments-renamed
    frozen = isinstance(train, Mode) and train.freezes('/'.join(self.path) + '/scale')
    return super().__call__(x, use_running_average=not train or frozen)
