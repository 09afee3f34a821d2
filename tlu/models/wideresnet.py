"""WideResNet-d-k (Zagoruyko & Komodakis 2016) as FixMatch and USB build it: WRN-28-2 is
the backbone of the semi-supervised CIFAR-10 benchmarks (Sohn et al. 2020, section 4).

Layout (USB's `semilearn/nets/wrn/wrn.py`, TorchSSL's before it): a 3x3 conv to 16
channels, three stages of n = (d - 4) / 6 pre-activation basic blocks at widths 16k, 32k,
64k (strides 1, 2, 2), then BatchNorm + leaky ReLU and global average pooling:
(N, H, W, C) -> (N, 64k) float32 (128 for WRN-28-2). A block is
BN -> LeakyReLU(0.1) -> conv3x3(stride) -> BN -> LeakyReLU(0.1) -> conv3x3, added to its
input; where the width changes, the block's first activation feeds both its conv and a
1x1 (stride) shortcut conv, as in USB. Every conv has a bias and pads by 1; BatchNorm has
eps 1e-3 and flax momentum 0.999 (torch's momentum 0.001). Convolutions start from
He-normal with fan-out (USB's `kaiming_normal_(mode='fan_out')`); biases start at zero (USB
leaves torch's uniform default). Dropout is 0, as in FixMatch's recipe.

Module names: `conv1`, `block{s}_layer{b}/{bn1,conv1,bn2,conv2,shortcut}`, `bn_final`, the
paths that surgery, freezing and `tlu.transfer` address.
"""

import functools

import flax.linen as nn
import jax.numpy as jnp

from tlu import checks
from tlu.models import MODELS, matmul_conv
from tlu.models.norm import BatchNorm

RANGES = {
    'depth': checks.Range(lambda v: v >= 10 and (v - 4) % 6 == 0, 'an integer 6n + 4 >= 10',
                          'integer'),
    'widen_factor': checks.POSITIVE_INT,
    'leaky_slope': checks.NON_NEGATIVE,
}


@MODELS.register('wideresnet', ranges=RANGES)
def build(c):
  """WideResNet from a model config (depth 28, widen_factor 2, leaky_slope 0.1, dtype, conv)."""
  return WideResNet(depth=c.get('depth', 28), widen_factor=c.get('widen_factor', 2),
                    leaky_slope=c.get('leaky_slope', 0.1),
                    dtype=jnp.dtype(c.get('dtype', 'float32')), conv=c.get('conv', 'xla'))


class Block(nn.Module):
  """One pre-activation basic block: (N, H, W, C_in) -> (N, H / stride, W / stride, filters)."""
  filters: int
  strides: int

  @nn.compact
  def __call__(self, x, conv, norm, act):
    y = act(norm(name='bn1')(x))
    if x.shape[-1] == self.filters:
      shortcut = x
    else:   # USB: the activated input feeds the shortcut too
      shortcut = conv(self.filters, (1, 1), (self.strides,) * 2, padding='VALID',
                      name='shortcut')(y)
    y = conv(self.filters, (3, 3), (self.strides,) * 2, padding=[(1, 1)] * 2, name='conv1')(y)
    y = act(norm(name='bn2')(y))
    y = conv(self.filters, (3, 3), padding=[(1, 1)] * 2, name='conv2')(y)
    return shortcut + y


class WideResNet(nn.Module):
  """depth = 6n + 4, widen_factor k; conv: a name in `tlu.models.matmul_conv.CONVS`."""
  depth: int = 28
  widen_factor: int = 2
  leaky_slope: float = 0.1
  dtype: jnp.dtype = jnp.float32
  conv: str = 'xla'

  @nn.compact
  def __call__(self, x, train=False):
    """x: (N, H, W, C) normalised images; train: bool or tlu.models.norm.Mode."""
    if self.depth < 10 or (self.depth - 4) % 6:
      raise ValueError(f'WideResNet depth {self.depth}: must be 6n + 4 >= 10')

    def norm(**kwargs):   # BatchNorm bound to this call's train mode
      bn = BatchNorm(momentum=0.999, epsilon=1e-3, dtype=self.dtype, **kwargs)
      return lambda y: bn(y, train)

    act = functools.partial(nn.leaky_relu, negative_slope=self.leaky_slope)
    conv = functools.partial(nn.Conv, use_bias=True, dtype=self.dtype,
                             kernel_init=nn.initializers.variance_scaling(2.0, 'fan_out',
                                                                          'normal'),
                             conv_general_dilated=matmul_conv.get(self.conv))
    x = conv(16, (3, 3), padding=[(1, 1)] * 2, name='conv1')(x.astype(self.dtype))
    for s, strides in enumerate((1, 2, 2)):
      for b in range((self.depth - 4) // 6):
        x = Block(16 * 2**s * self.widen_factor, strides if b == 0 else 1,
                  name=f'block{s + 1}_layer{b}')(x, conv, norm, act)
    x = act(norm(name='bn_final')(x))
    return jnp.mean(x, axis=(1, 2)).astype(jnp.float32)
