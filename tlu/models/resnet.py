"""ResNet-18/34/50/101 (He et al. 2016) as torchvision builds them, with a CIFAR or ImageNet stem.

The ImageNet stem and the blocks compute what torchvision's `resnet{18,34,50,101}` compute,
so their weights convert leaf by leaf (`tlu.convert`): a 7x7/2 conv (padding 3), max-pool
3x3/2 with padding 1; every 3x3 conv padded by 1 on *both* sides (torch's symmetric
padding, not XLA's 'SAME', which pads a stride-2 conv of an even input only at the end);
bottlenecks stride on their 3x3 conv (ResNet v1.5); a projection shortcut (1x1 conv + BN)
where a block changes the width or the resolution; BatchNorm with eps 1e-5 and flax
momentum 0.9 (torch's momentum 0.1: new = 0.9 old + 0.1 batch). One difference in training
only: torch updates the running variance with the unbiased batch variance, flax with the
biased one. The CIFAR stem (3x3/1 conv, no pool) keeps small images at full resolution.

Module names are stable (`stem_conv`, `stem_bn`, `stage{s}_block{b}/conv{i}`, `bn{i}`,
`proj_conv`, `proj_bn`) because parameter paths are the public addresses used by surgery,
freezing and the converters. The last BatchNorm of each block starts at scale 0 (Goyal et al.
2017; torchvision's `zero_init_residual=True`). The backbone ends at global average
pooling: (N, H, W, C) -> (N, 8 * width | 32 * width) float32 (512 | 2048 at width 64).
"""

import functools

import flax.linen as nn
import jax.numpy as jnp

from tlu import checks
from tlu.models import MODELS, matmul_conv
from tlu.models.norm import BatchNorm

STAGE_SIZES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
STEMS = ('cifar', 'imagenet')


def build(depth, c):
  """ResNet-`depth` from a model config (stem: 'cifar' for 18, else 'imagenet' by default;
  width, dtype, conv)."""
  return ResNet(depth, stem=c.get('stem', 'cifar' if depth == 18 else 'imagenet'),
                width=c.get('width', 64), dtype=jnp.dtype(c.get('dtype', 'float32')),
                conv=c.get('conv', 'xla'))


for _depth in STAGE_SIZES:
  MODELS.register(f'resnet{_depth}', ranges={'width': checks.POSITIVE_INT})(
      functools.partial(build, _depth))


def torch_padding(kernel):
  """torch's `padding=k // 2` on both sides of both spatial axes, for an odd kernel size k."""
  return [(kernel // 2, kernel // 2)] * 2


class BasicBlock(nn.Module):
  """conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, plus the (projected) input, ReLU."""
  filters: int
  strides: int = 1

  @nn.compact
  def __call__(self, x, conv, norm):
    residual = x
    y = conv(self.filters, (3, 3), (self.strides,) * 2, padding=torch_padding(3),
             name='conv1')(x)
    y = nn.relu(norm(name='bn1')(y))
    y = conv(self.filters, (3, 3), padding=torch_padding(3), name='conv2')(y)
    y = norm(name='bn2', scale_init=nn.initializers.zeros)(y)
    if self.strides != 1 or x.shape[-1] != self.filters:
      residual = conv(self.filters, (1, 1), (self.strides,) * 2, padding='VALID',
                      name='proj_conv')(residual)
      residual = norm(name='proj_bn')(residual)
    return nn.relu(residual + y)


class Bottleneck(nn.Module):
  """conv1x1 -> conv3x3(stride) -> conv1x1 (x4 width), BN + ReLU between, plus the shortcut."""
  filters: int
  strides: int = 1

  @nn.compact
  def __call__(self, x, conv, norm):
    residual = x
    y = conv(self.filters, (1, 1), padding='VALID', name='conv1')(x)
    y = nn.relu(norm(name='bn1')(y))
    y = conv(self.filters, (3, 3), (self.strides,) * 2, padding=torch_padding(3),
             name='conv2')(y)
    y = nn.relu(norm(name='bn2')(y))
    y = conv(self.filters * 4, (1, 1), padding='VALID', name='conv3')(y)
    y = norm(name='bn3', scale_init=nn.initializers.zeros)(y)
    if self.strides != 1 or x.shape[-1] != self.filters * 4:
      residual = conv(self.filters * 4, (1, 1), (self.strides,) * 2, padding='VALID',
                      name='proj_conv')(residual)
      residual = norm(name='proj_bn')(residual)
    return nn.relu(residual + y)


class ResNet(nn.Module):
  """depth in STAGE_SIZES; stem 'cifar' | 'imagenet'; width: channels of the first stage;
  conv: how convolutions compute, a name in `tlu.models.matmul_conv.CONVS` (same parameters;
  'matmul_small' runs the 8x8 and smaller maps as im2col matmuls, faster on CPU)."""
  depth: int = 18
  stem: str = 'cifar'
  width: int = 64
  dtype: jnp.dtype = jnp.float32
  conv: str = 'xla'

  @nn.compact
  def __call__(self, x, train=False):
    """x: (N, H, W, C) normalised images; train: bool or tlu.models.norm.Mode."""
    if self.depth not in STAGE_SIZES:
      raise ValueError(f'ResNet depth {self.depth}: use one of {tuple(STAGE_SIZES)}')

    def norm(**kwargs):  # BatchNorm bound to this call's train mode (tlu.models.norm.Mode)
      bn = BatchNorm(momentum=0.9, epsilon=1e-5, dtype=self.dtype, **kwargs)
      return lambda y: bn(y, train)

    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype,
                             conv_general_dilated=matmul_conv.get(self.conv))
    x = x.astype(self.dtype)
    if self.stem == 'imagenet':
      x = conv(self.width, (7, 7), (2, 2), padding=torch_padding(7), name='stem_conv')(x)
      x = nn.relu(norm(name='stem_bn')(x))
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=torch_padding(3))  # pads with -inf
    elif self.stem == 'cifar':
      x = conv(self.width, (3, 3), padding=torch_padding(3), name='stem_conv')(x)
      x = nn.relu(norm(name='stem_bn')(x))
    else:
      raise ValueError(f'unknown stem {self.stem!r}; use one of {STEMS}')
    block = Bottleneck if self.depth >= 50 else BasicBlock
    for s, n_blocks in enumerate(STAGE_SIZES[self.depth]):
      for b in range(n_blocks):
        strides = 2 if s > 0 and b == 0 else 1
        x = block(self.width * 2**s, strides, name=f'stage{s + 1}_block{b}')(x, conv, norm)
    return jnp.mean(x, axis=(1, 2)).astype(jnp.float32)
