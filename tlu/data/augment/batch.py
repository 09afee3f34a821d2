"""Batch augmentation: `make_augment` (one key per image, vmapped), `two_views`, and
`MultiView`, the per-view pipelines and local crops of an augmentation spec with `views`."""

import dataclasses
from typing import Callable, Mapping, Optional, Tuple

import jax
import jax.numpy as jnp

from tlu import checks
from tlu.data.augment.config import RANGES, AugmentConfig, resolve_config
from tlu.data.augment.pipeline import augment_image

# augment(key, images (N, H, W, C)) -> images (N, H, W, C).
Augment = Callable[[jax.Array, jax.Array], jax.Array]

VIEW_KEYS = ('views', 'local', 'local_crops', 'local_size')


def make_augment(config):
  """Builds the augmentation of a spec: a function of (key, images), or a `MultiView`.

  Args:
    config: a name in `PRESETS`, an `AugmentConfig`, or a mapping (see
      `resolve_config`): one pipeline. A mapping with `views` is a multi-view spec
      (see `MultiView.from_spec`): per-view pipelines and local crops.

  Returns:
    For one pipeline, `augment(key, images) -> images`: a pure function of (key,
    images (N, H, W, C) float in [0, 1], C in {1, 3}) returning augmented images of
    the same shape and dtype, values in [0, 1]. Each example is augmented with its
    own key from `jax.random.split(key, N)`. It traces under `jax.jit` (H, W, C
    must be static, as always). For a multi-view spec, a `MultiView`.
  """
  if is_multi_view(config):
    return MultiView.from_spec(config)
  config = resolve_config(config)
  return lambda key, images: augment_batch(config, key, images)


def augment_batch(config: AugmentConfig, key, images, size=None):
  """`config`'s pipeline on each image of (N, H, W, C) with its own key -> (N, h, w, C).

  size: output (h, w), default (H, W) (see `augment_image`).
  """
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError('augment expects NHWC images with 1 or 3 channels, got '
                     f'shape {images.shape}.')
  keys = jax.random.split(key, images.shape[0])
  out = jax.vmap(lambda k, x: augment_image(config, k, x, size))(
      keys, images.astype(jnp.float32))
  return out.astype(images.dtype)


def is_multi_view(config):
  """Whether an augmentation spec is a multi-view spec (a mapping with `views`)."""
  if hasattr(config, 'to_dict'):
    config = config.to_dict()
  return isinstance(config, Mapping) and 'views' in config


@dataclasses.dataclass(frozen=True)
class MultiView:
  """Asymmetric views and multi-crop: one pipeline per global view, N local crops.

  BYOL (Grill et al. 2020, Table 6) and DINO (Caron et al. 2021) augment their two
  views differently (blur always in one, solarize only in the other); SwAV's and
  DINO's multi-crop (Caron et al. 2020, Section 3.2) adds `local_crops` small crops at
  `local_size`, which the networks see at that lower resolution.

  views(key, images (N, H, W, C)) -> [global view 1, ..., global view G (N, H, W, C),
  local crop 1, ..., local crop L (N, h, w, C)], view v augmented with key v of
  `jax.random.split(key, G + L)` and each example with its own key (as `two_views`).
  Calling it, `(key, images)`, gives the first global view only.

  Attributes:
    global_configs: (AugmentConfig, ...) one per global view, G >= 1.
    local_config: the AugmentConfig of every local crop (its crop draws the region
      that is resampled to local_size), or None when local_crops is 0.
    local_crops: L >= 0.
    local_size: (h, w) of the local crops, or None when local_crops is 0.
  """
  global_configs: Tuple[AugmentConfig, ...]
  local_config: Optional[AugmentConfig] = None
  local_crops: int = 0
  local_size: Optional[Tuple[int, int]] = None

  @property
  def num_global(self):
    return len(self.global_configs)

  @property
  def num_views(self):
    return len(self.global_configs) + self.local_crops

  @classmethod
  def from_spec(cls, spec):
    """{'views': [spec, ...], 'local': spec, 'local_crops': L, 'local_size': s or (h, w)}.

    Each spec is what `resolve_config` takes (a preset name, an AugmentConfig or a
    mapping); `local` and `local_size` are needed when local_crops >= 1. ValueError
    for unknown keys or values out of range (`tlu.data.augment.config.RANGES`).
    """
    if hasattr(spec, 'to_dict'):
      spec = spec.to_dict()
    spec = dict(spec)
    unknown = sorted(set(spec) - set(VIEW_KEYS))
    if unknown:
      raise ValueError(f'Unknown multi-view augmentation key(s) {unknown}; known: '
                       f'{list(VIEW_KEYS)} (the views\' options go inside each view spec).')
    views = spec['views']
    if isinstance(views, (str, Mapping, AugmentConfig)) or not views:
      raise ValueError(f'augment.views={views!r}: must be a non-empty list of view specs')
    for i, view in enumerate(views):
      if isinstance(view, Mapping):
        checks.check_values(view, RANGES, f'views.{i}.')
    local_crops = spec.get('local_crops', 0)
    if not isinstance(local_crops, int) or isinstance(local_crops, bool) or local_crops < 0:
      raise ValueError(f'augment.local_crops={local_crops!r}: must be an integer >= 0')
    local_config = local_size = None
    if local_crops:
      if spec.get('local') is None or spec.get('local_size') is None:
        raise ValueError(f'augment.local_crops={local_crops} needs augment.local (a view '
                         'spec) and augment.local_size')
      if isinstance(spec['local'], Mapping):
        checks.check_values(spec['local'], RANGES, 'local.')
      local_config = resolve_config(spec['local'])
      size = spec['local_size']
      size = tuple(size) if isinstance(size, (list, tuple)) else (size, size)
      if len(size) != 2 or not all(isinstance(s, int) and s >= 1 for s in size):
        raise ValueError(f'augment.local_size={spec["local_size"]!r}: must be an integer '
                         '>= 1 or a pair (h, w) of them')
      local_size = size
    return cls(tuple(resolve_config(v) for v in views), local_config, local_crops, local_size)

  def views(self, key, images):
    """[G global views (N, H, W, C), L local crops (N, h, w, C)]; see the class docstring."""
    keys = jax.random.split(key, self.num_views)
    out = [augment_batch(c, k, images) for c, k in zip(self.global_configs, keys)]
    out += [augment_batch(self.local_config, k, images, self.local_size)
            for k in keys[self.num_global:]]
    return out

  def __call__(self, key, images):
    return augment_batch(self.global_configs[0], key, images)


def two_views(augment: Augment, key, images):
  """Two independently augmented views of `images` (N, H, W, C) for SimCLR.

  Returns (view1, view2), each (N, H, W, C), from the two halves of `key`.
  """
  key1, key2 = jax.random.split(key)
  return augment(key1, images), augment(key2, images)


def views(augment, key, images):
  """The views a multi-view method trains on: a list of float arrays (N, h, w, C).

  augment: an `Augment` (two views through it) or an object with its own
  `views(key, images)` (a `MultiView`: per-view pipelines, multi-crop).
  """
  if hasattr(augment, 'views'):
    return list(augment.views(key, images))
  return list(two_views(augment, key, images))


def num_global_views(augment):
  """How many leading views of `views(augment, ...)` are global (full-size) views:
  a `MultiView`'s global views, else both of `two_views`."""
  return getattr(augment, 'num_global', 2)
