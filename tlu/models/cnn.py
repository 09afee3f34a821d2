"""The small CNN of the problem statement: conv 64 -> conv 128 -> fc 512 (-> classifier head)."""

import flax.linen as nn
import jax.numpy as jnp

from tlu import checks
from tlu.models import MODELS, matmul_conv
from tlu.models.norm import BatchNorm


@MODELS.register('cnn', ranges={
    'widths': checks.WIDTHS, 'hidden': checks.WIDTHS, 'kernel_size': checks.POSITIVE_INT,
    'features': checks.Range(lambda v: v >= 0, 'an integer >= 0 (0: no fc layer, cnn only)', 'integer')})
def build(c):
  """SmallCNN from a model config (widths, features, use_bn, dtype, pool, kernel_size,
  padding, hidden, conv)."""
  return SmallCNN(widths=tuple(c.get('widths', (64, 128))), features=c.get('features', 512),
                  use_bn=c.get('use_bn', True), dtype=jnp.dtype(c.get('dtype', 'float32')),
                  pool=c.get('pool', 'flatten'), kernel_size=c.get('kernel_size', 3),
                  padding=c.get('padding', 'SAME'), hidden=tuple(c.get('hidden', ())),
                  conv=c.get('conv', 'xla'))


class SmallCNN(nn.Module):
  """Backbone: two 3x3 conv blocks with 2x2 max-pooling, then a 512-d fc feature.

  Works on any input size (8x8 digits, 32x32 images); output (N, features).
  `use_bn` adds BatchNorm after each conv so frozen-statistics behaviour can be
  exercised on a model that trains in seconds. `pool`: what the fc layer sees,
  'flatten' (every position of the last conv map: its size fixes the input size)
  or 'global' (the average over positions, widths[-1] values, as ResNets do: one
  set of weights for every input size, e.g. multi-crop's global and local crops).
  `kernel_size` and `padding` set the convolutions ('SAME' or 'VALID'); `hidden` adds
  fc layers (with ReLU) before the `features` layer; `features=0` has no fc layer at all:
  the pooled conv map (BatchNorm -> ReLU -> pool) is the output, as in a ResNet. The DANN
  paper's MNIST network is widths (32, 48), kernel 5, 'VALID', hidden (100,), features 100,
  no BatchNorm.
  `conv`: how convolutions compute, a name in `tlu.models.matmul_conv.CONVS`: 'xla'
  (`lax.conv_general_dilated`), 'matmul' (im2col: much faster on CPU for small maps) or
  'matmul_small' (im2col on maps of at most 8x8); parameters and, up to float32 round-off,
  outputs are the same.
  """
  widths: tuple = (64, 128)
  features: int = 512
  use_bn: bool = True
  dtype: jnp.dtype = jnp.float32  # compute dtype; parameters stay float32
  pool: str = 'flatten'
  kernel_size: int = 3
  padding: str = 'SAME'
  hidden: tuple = ()
  conv: str = 'xla'

  @nn.compact
  def __call__(self, x, train=False):
    """x: (N, H, W, C) float; train: bool or tlu.models.norm.Mode."""
    x = x.astype(self.dtype)
    conv = matmul_conv.get(self.conv)
    for i, width in enumerate(self.widths):
      x = nn.Conv(width, (self.kernel_size,) * 2, padding=self.padding,
                  use_bias=not self.use_bn, dtype=self.dtype,
                  conv_general_dilated=conv, name=f'conv{i}')(x)
      if self.use_bn:
        x = BatchNorm(momentum=0.9, dtype=self.dtype, name=f'bn{i}')(x, train)
      x = nn.relu(x)
      if min(x.shape[1:3]) >= 2:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    if self.pool == 'global':
      x = jnp.mean(x, axis=(1, 2))
    elif self.pool == 'flatten':
      x = jnp.reshape(x, (x.shape[0], -1))
    else:
      raise ValueError(f"model.pool={self.pool!r}: must be 'flatten' or 'global'")
    for i, width in enumerate(self.hidden):
      x = nn.relu(nn.Dense(width, dtype=self.dtype, name=f'fc_hidden{i}')(x))
    if self.features:
      x = nn.relu(nn.Dense(self.features, dtype=self.dtype, name='fc')(x))
    return x.astype(jnp.float32)
