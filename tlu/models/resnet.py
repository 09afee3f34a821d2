"""ResNet-18/50 (He et al. 2016) with a CIFAR (3x3, no pool) or ImageNet (7x7 + max-pool) stem.

Module names are stable (`stem_conv`, `stage{s}_block{b}/conv{i}`) because
parameter paths are the public addresses used by surgery and freezing.
The backbone ends at global average pooling: (N, H, W, C) -> (N, 512 | 2048).
"""

import functools

import flax.linen as nn
import jax.numpy as jnp

from tlu.models.norm import BatchNorm

STAGE_SIZES = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}


class BasicBlock(nn.Module):
  filters: int
  strides: int = 1

  @nn.compact
  def __call__(self, x, conv, norm):
    residual = x
    y = conv(self.filters, (3, 3), (self.strides,) * 2, use_bias=False, name='conv1')(x)
    y = nn.relu(norm(name='bn1')(y))
    y = conv(self.filters, (3, 3), use_bias=False, name='conv2')(y)
    y = norm(name='bn2', scale_init=nn.initializers.zeros)(y)
    if residual.shape != y.shape:
      residual = conv(self.filters, (1, 1), (self.strides,) * 2, use_bias=False,
                         name='proj_conv')(residual)
      residual = norm(name='proj_bn')(residual)
    return nn.relu(residual + y)


class Bottleneck(nn.Module):
  filters: int
  strides: int = 1

  @nn.compact
  def __call__(self, x, conv, norm):
    residual = x
    y = conv(self.filters, (1, 1), use_bias=False, name='conv1')(x)
    y = nn.relu(norm(name='bn1')(y))
    y = conv(self.filters, (3, 3), (self.strides,) * 2, use_bias=False, name='conv2')(y)
    y = nn.relu(norm(name='bn2')(y))
    y = conv(self.filters * 4, (1, 1), use_bias=False, name='conv3')(y)
    y = norm(name='bn3', scale_init=nn.initializers.zeros)(y)
    if residual.shape != y.shape:
      residual = conv(self.filters * 4, (1, 1), (self.strides,) * 2, use_bias=False,
                         name='proj_conv')(residual)
      residual = norm(name='proj_bn')(residual)
    return nn.relu(residual + y)


class ResNet(nn.Module):
  depth: int = 18
  stem: str = 'cifar'  # 'cifar' | 'imagenet'
  width: int = 64
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    def norm(**kwargs):  # BatchNorm bound to this call's train mode (tlu.models.norm.Mode)
      bn = BatchNorm(momentum=0.9, epsilon=1e-5, dtype=self.dtype, **kwargs)
      return lambda y: bn(y, train)

    conv = functools.partial(nn.Conv, dtype=self.dtype)
    x = x.astype(self.dtype)
    if self.stem == 'imagenet':
      x = conv(self.width, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], use_bias=False,
               name='stem_conv')(x)
      x = nn.relu(norm(name='stem_bn')(x))
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding='SAME')
    elif self.stem == 'cifar':
      x = conv(self.width, (3, 3), use_bias=False, name='stem_conv')(x)
      x = nn.relu(norm(name='stem_bn')(x))
    else:
      raise ValueError(f'unknown stem {self.stem!r}; use "cifar" or "imagenet"')
    block = Bottleneck if self.depth >= 50 else BasicBlock
    for s, n_blocks in enumerate(STAGE_SIZES[self.depth]):
      for b in range(n_blocks):
        strides = 2 if s > 0 and b == 0 else 1
        x = block(self.width * 2**s, strides, name=f'stage{s + 1}_block{b}')(x, conv, norm)
    return jnp.mean(x, axis=(1, 2)).astype(jnp.float32)
