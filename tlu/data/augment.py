"""On-device image augmentations for contrastive learning, run inside `jax.jit`.

SimCLR's views (Chen et al., 2020, Section 3 and Appendix A) come from a random
resized crop, a horizontal flip, colour jitter applied with probability 0.8,
grayscale with probability 0.2 and, on ImageNet, Gaussian blur with probability
0.5. Doing this on the accelerator keeps the host pipeline a plain uint8 loader
and lets each device augment its own shard of the global batch.

Every example gets its own key (the batch key is split into N keys and a
per-image function is vmapped), so a view is a pure function of (key, image):
the same key reproduces it, jit or not. Shapes are static: a crop is resampled
back to the input size with `jax.image.scale_and_translate`.

Images are float in [0, 1], NHWC, with 1 or 3 channels. Hue and saturation need
RGB and are skipped for 1-channel images; grayscale of a 1-channel image is the
image itself.
"""

import dataclasses
import math
from typing import Callable, Mapping, Optional, Tuple

import dm_pix
import jax
import jax.numpy as jnp

Augment = Callable[[jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
  """What to apply, in this order: crop, flip, affine, jitter, gray, blur, noise, invert.

  The default applies nothing. A probability of 0 (or a `None` crop scale)
  removes the op from the compiled function.

  Attributes:
    crop_scale: (min, max) area fraction of a random resized crop, or None.
    crop_ratio: (min, max) aspect ratio (width / height) of the crop.
    flip_prob: probability of a horizontal (left-right) flip.
    affine_prob: probability of a random affine warp about the image centre.
    rotate_deg: rotation angle drawn from U(-rotate_deg, rotate_deg) degrees.
    shear_deg: horizontal shear angle drawn from U(-shear_deg, shear_deg).
    translate_frac: shift drawn from U(-f, f) * size along each axis.
    affine_fill: dm-pix `mode` for pixels warped in from outside: 'constant'
      (black, for digits on a black background) or 'nearest' (edge colour).
    jitter_prob: probability of colour jitter (torchvision `ColorJitter`
      semantics: factors drawn from [max(0, 1 - s), 1 + s], hue from [-h, h]).
    brightness, contrast, saturation, hue: jitter strengths; 0 disables one.
    jitter_random_order: apply the jitter ops in a random order per image.
    grayscale_prob: probability of converting to grayscale (channels kept).
    blur_prob: probability of Gaussian blur.
    blur_sigma: (min, max) of the blur sigma in pixels.
    blur_kernel_frac: kernel side as a fraction of the image side (SimCLR: 10%).
    noise_prob: probability of additive Gaussian noise.
    noise_std: standard deviation of that noise.
    invert_prob: probability, per channel, of inverting it (x -> 1 - x): a
      digit composited as |background - digit| keeps its polarity in a channel
      where the background is dark and flips it where it is bright.
  """
  crop_scale: Optional[Tuple[float, float]] = None
  crop_ratio: Tuple[float, float] = (3 / 4, 4 / 3)
  flip_prob: float = 0.0
  affine_prob: float = 0.0
  rotate_deg: float = 0.0
  shear_deg: float = 0.0
  translate_frac: float = 0.0
  affine_fill: str = 'constant'
  jitter_prob: float = 0.0
  brightness: float = 0.0
  contrast: float = 0.0
  saturation: float = 0.0
  hue: float = 0.0
  jitter_random_order: bool = True
  grayscale_prob: float = 0.0
  blur_prob: float = 0.0
  blur_sigma: Tuple[float, float] = (0.1, 2.0)
  blur_kernel_frac: float = 0.1
  noise_prob: float = 0.0
  noise_std: float = 0.0
  invert_prob: float = 0.0


PRESETS = {
    # solo-learn's SimCLR CIFAR recipe: no blur on 32x32 images.
    'simclr_cifar': AugmentConfig(
        crop_scale=(0.08, 1.0), flip_prob=0.5,
        jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
        grayscale_prob=0.2),
    # SimCLR Appendix A, colour strength s = 1 (0.8s, 0.8s, 0.8s, 0.2s), blur p=0.5.
    'simclr_imagenet': AugmentConfig(
        crop_scale=(0.08, 1.0), flip_prob=0.5,
        jitter_prob=0.8, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2,
        grayscale_prob=0.2, blur_prob=0.5),
    # Supervised ImageNet training ("Inception crop" + flip, He et al. 2016).
    'supervised_imagenet': AugmentConfig(crop_scale=(0.08, 1.0), flip_prob=0.5),
    # 8x8 grayscale digits: digits are not mirror-invariant (no flip) and have
    # no colour; mild crops, small warps and pixel noise.
    'digits': AugmentConfig(
        crop_scale=(0.6, 1.0), affine_prob=0.8, rotate_deg=15.0, shear_deg=10.0,
        translate_frac=0.1, affine_fill='constant', noise_prob=0.5,
        noise_std=0.05),
    # 32x32 RGB digits over textures (tlu_digits_m): crops and warps as for
    # digits, SimCLR colour distortion on top; still no flip.
    'digits_rgb': AugmentConfig(
        crop_scale=(0.5, 1.0), affine_prob=0.8, rotate_deg=15.0, shear_deg=10.0,
        translate_frac=0.1, affine_fill='nearest',
        jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1,
        grayscale_prob=0.2),
    # A source model for |background - digit| targets: each channel's polarity
    # and contrast vary, as they do over a photograph; no crop or warp.
    'digits_polarity': AugmentConfig(
        invert_prob=0.5, jitter_prob=0.8, brightness=0.4, contrast=0.4),
}

# Fixed key slots, so switching one op on or off leaves the others' draws as
# they were.
_CROP, _FLIP, _AFFINE, _JITTER, _GRAY, _BLUR, _NOISE, _INVERT = range(8)
_NUM_SLOTS = 8


def resolve_config(config):
  """A preset name, an `AugmentConfig`, or a mapping -> `AugmentConfig`.

  A mapping (dict, ml_collections ConfigDict) may name a base preset under
  `preset`; its other keys override fields of that preset (or of the identity
  default), e.g. `{'preset': 'simclr_cifar', 'blur_prob': 0.5}`.
  """
  if isinstance(config, AugmentConfig):
    return config
  if isinstance(config, str):
    if config not in PRESETS:
      raise ValueError(f'Unknown augmentation preset {config!r}; '
                       f'known: {sorted(PRESETS)}.')
    return PRESETS[config]
  if hasattr(config, 'to_dict'):  # ml_collections.ConfigDict
    config = config.to_dict()
  if not isinstance(config, Mapping):
    raise TypeError('An augmentation config is a preset name, an AugmentConfig '
                    f'or a mapping, not {type(config).__name__}.')
  overrides = dict(config)
  base = resolve_config(overrides.pop('preset')) if 'preset' in overrides else (
      AugmentConfig())
  fields = {f.name for f in dataclasses.fields(AugmentConfig)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ValueError(f'Unknown augmentation option(s) {unknown}; '
                     f'known: {sorted(fields)} and `preset`.')
  overrides = {k: tuple(v) if isinstance(v, (list, tuple)) else v
               for k, v in overrides.items()}
  return dataclasses.replace(base, **overrides)


def make_augment(config) -> Augment:
  """Builds `augment(key, images) -> images` from a preset name or a config.

  Args:
    config: a name in `PRESETS`, an `AugmentConfig`, or a mapping (see
      `resolve_config`).

  Returns:
    A pure function of (key, images (N, H, W, C) float in [0, 1], C in {1, 3})
    returning augmented images of the same shape and dtype, values in [0, 1].
    Each example is augmented with its own key from `jax.random.split(key, N)`.
    The function traces under `jax.jit` (H, W, C must be static, as always).
  """
  config = resolve_config(config)

  def augment(key, images):
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
      raise ValueError('augment expects NHWC images with 1 or 3 channels, got '
                       f'shape {images.shape}.')
    keys = jax.random.split(key, images.shape[0])
    out = jax.vmap(lambda k, x: augment_image(config, k, x))(
        keys, images.astype(jnp.float32))
    return out.astype(images.dtype)

  return augment


def two_views(augment: Augment, key, images):
  """Two independently augmented views of `images` (N, H, W, C) for SimCLR."""
  key1, key2 = jax.random.split(key)
  return augment(key1, images), augment(key2, images)


def augment_image(config: AugmentConfig, key, image):
  """Augments one float32 image (H, W, C) in [0, 1]; see `AugmentConfig`."""
  slots = jax.random.split(key, _NUM_SLOTS)
  if config.crop_scale is not None:
    image = random_resized_crop(slots[_CROP], image, config.crop_scale,
                                config.crop_ratio)
  if config.flip_prob > 0:
    image = dm_pix.random_flip_left_right(slots[_FLIP], image,
                                          probability=config.flip_prob)
  if config.affine_prob > 0:
    image = _with_probability(
        slots[_AFFINE], config.affine_prob,
        lambda k, x: random_affine(k, x, config.rotate_deg, config.shear_deg,
                                   config.translate_frac, config.affine_fill),
        image)
  if config.jitter_prob > 0:
    image = _with_probability(
        slots[_JITTER], config.jitter_prob,
        lambda k, x: color_jitter(k, x, config.brightness, config.contrast,
                                  config.saturation, config.hue,
                                  config.jitter_random_order),
        image)
  if config.grayscale_prob > 0:
    image = _with_probability(slots[_GRAY], config.grayscale_prob,
                              lambda _, x: grayscale(x), image)
  if config.blur_prob > 0:
    kernel_size = max(3, round(config.blur_kernel_frac * min(image.shape[:2])))
    image = _with_probability(
        slots[_BLUR], config.blur_prob,
        lambda k, x: random_gaussian_blur(k, x, config.blur_sigma, kernel_size),
        image)
  if config.noise_prob > 0 and config.noise_std > 0:
    image = _with_probability(
        slots[_NOISE], config.noise_prob,
        lambda k, x: x + config.noise_std * jax.random.normal(k, x.shape, x.dtype),
        image)
  if config.invert_prob > 0:
    flip = jax.random.bernoulli(slots[_INVERT], config.invert_prob, image.shape[-1:])
    image = jnp.where(flip, 1.0 - image, image)
  return jnp.clip(image, 0.0, 1.0)


def _with_probability(key, p, fn, image):
  """fn(key, image) with probability p, else image (a select under vmap)."""
  apply_key, fn_key = jax.random.split(key)
  return jnp.where(jax.random.bernoulli(apply_key, p), fn(fn_key, image), image)


def random_resized_crop(key, image, scale, ratio, num_attempts=10):
  """Inception-style crop of (H, W, C) resampled back to (H, W, C).

  Follows torchvision's `RandomResizedCrop` (Szegedy et al., 2015): up to
  `num_attempts` boxes with area fraction ~ U(scale) and log aspect ratio
  ~ U(log ratio) are drawn, the first that fits is used; if none fits, the
  central crop with the aspect ratio clamped to `ratio`. Boxes have real-valued
  corners (no rounding to pixels); resampling is bilinear.
  """
  height, width = image.shape[0], image.shape[1]
  k_area, k_ratio, k_y, k_x = jax.random.split(key, 4)
  area = height * width * jax.random.uniform(
      k_area, (num_attempts,), minval=scale[0], maxval=scale[1])
  aspect = jnp.exp(jax.random.uniform(
      k_ratio, (num_attempts,), minval=math.log(ratio[0]),
      maxval=math.log(ratio[1])))
  crop_w = jnp.sqrt(area * aspect)
  crop_h = jnp.sqrt(area / aspect)
  fits = (crop_w <= width) & (crop_h <= height)

  # torchvision's fallback; static because H, W and ratio are.
  in_ratio = width / height
  if in_ratio < ratio[0]:
    fallback_w, fallback_h = width, width / ratio[0]
  elif in_ratio > ratio[1]:
    fallback_w, fallback_h = height * ratio[1], height
  else:
    fallback_w, fallback_h = width, height
  first = jnp.argmax(fits)
  found = fits[first]
  crop_w = jnp.where(found, crop_w[first], fallback_w)
  crop_h = jnp.where(found, crop_h[first], fallback_h)
  top = jnp.where(found, jax.random.uniform(k_y) * (height - crop_h),
                  (height - crop_h) / 2)
  left = jnp.where(found, jax.random.uniform(k_x) * (width - crop_w),
                   (width - crop_w) / 2)

  # scale_and_translate maps input coordinate u to u * scale + translation
  # (pixel edges at integers), so the box [top, top + crop_h) lands on [0, H).
  scale = jnp.stack([height / crop_h, width / crop_w])
  translation = -jnp.stack([top, left]) * scale
  return jax.image.scale_and_translate(
      image, image.shape, spatial_dims=(0, 1), scale=scale,
      translation=translation, method='linear', antialias=True)


def random_affine(key, image, rotate_deg, shear_deg, translate_frac,
                  fill='constant'):
  """Random rotation, horizontal shear and translation of (H, W, C) about its centre.

  The forward map is x -> R(theta) S(phi) (x - c) + c + t on (row, col) pixel
  coordinates; dm-pix resamples by pulling, so it gets the inverse.
  """
  height, width = image.shape[0], image.shape[1]
  k_rot, k_shear, k_shift = jax.random.split(key, 3)
  theta = jnp.deg2rad(jax.random.uniform(k_rot, minval=-rotate_deg,
                                         maxval=rotate_deg))
  phi = jnp.deg2rad(jax.random.uniform(k_shear, minval=-shear_deg,
                                       maxval=shear_deg))
  shift = jax.random.uniform(k_shift, (2,), minval=-translate_frac,
                             maxval=translate_frac) * jnp.array([height, width])
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  # Forward: R(theta) = [[cos, -sin], [sin, cos]], S(phi) = [[1, 0], [tan, 1]]
  # (col += tan(phi) * row). Inverse: S(-phi) R(-theta).
  inverse_rotation = jnp.array([[cos, sin], [-sin, cos]])
  inverse_shear = jnp.array([[1.0, 0.0], [-jnp.tan(phi), 1.0]])
  inverse = inverse_shear @ inverse_rotation
  centre = jnp.array([(height - 1) / 2, (width - 1) / 2])
  # Output pixel o samples the input at inverse @ (o - centre - shift) + centre.
  offset = centre - inverse @ (centre + shift)
  matrix = jnp.eye(4).at[:2, :2].set(inverse).at[:2, 3].set(offset)
  return dm_pix.affine_transform(image, matrix[:3], mode=fill, order=1)


def color_jitter(key, image, brightness, contrast, saturation, hue,
                 random_order=True):
  """torchvision-style `ColorJitter` on one (H, W, C) image in [0, 1].

  Brightness multiplies (torchvision's meaning of the strengths; dm-pix's
  `adjust_brightness` adds a delta, TF's meaning). Contrast, saturation and hue
  use dm-pix (`adjust_contrast` blends with each channel's mean, saturation and
  hue go through HSV). Each op's output is clipped to [0, 1] before the next,
  as torchvision does. Saturation and hue are skipped for 1-channel images.
  """
  rgb = image.shape[-1] == 3
  ops = []
  if brightness > 0:
    ops.append((lambda x, f: x * f, _factor_range(brightness)))
  if contrast > 0:
    ops.append((lambda x, f: dm_pix.adjust_contrast(x, f),
                _factor_range(contrast)))
  if saturation > 0 and rgb:
    ops.append((lambda x, f: dm_pix.adjust_saturation(x, f),
                _factor_range(saturation)))
  if hue > 0 and rgb:
    ops.append((lambda x, d: dm_pix.adjust_hue(x, d), (-hue, hue)))
  if not ops:
    return image
  k_order, k_values = jax.random.split(key)
  lows = jnp.array([low for _, (low, _) in ops])
  highs = jnp.array([high for _, (_, high) in ops])
  values = jax.random.uniform(k_values, (len(ops),), minval=lows, maxval=highs)
  branches = [lambda x, v, i=i, op=op: jnp.clip(op(x, v[i]), 0.0, 1.0)
              for i, (op, _) in enumerate(ops)]
  if random_order and len(ops) > 1:
    order = jax.random.permutation(k_order, len(ops))
    for step in range(len(ops)):
      image = jax.lax.switch(order[step], branches, image, values)
  else:
    for branch in branches:
      image = branch(image, values)
  return image


def _factor_range(strength):
  return (max(0.0, 1.0 - strength), 1.0 + strength)


def grayscale(image):
  """Rec.601 luma of an RGB (H, W, 3) image, tiled back to 3 channels."""
  if image.shape[-1] == 1:
    return image
  return dm_pix.rgb_to_grayscale(image, keep_dims=True)


def random_gaussian_blur(key, image, sigma_range, kernel_size):
  """Gaussian blur of (H, W, C) with sigma ~ U(sigma_range) (SimCLR Appendix A).

  dm-pix convolves with zero padding, which darkens the border; dividing by the
  blur of an all-ones image renormalises the truncated kernel there.
  """
  sigma = jax.random.uniform(key, minval=sigma_range[0], maxval=sigma_range[1])
  blurred = dm_pix.gaussian_blur(image, sigma, kernel_size)
  weight = dm_pix.gaussian_blur(jnp.ones_like(image[..., :1]), sigma,
                                kernel_size)
  return blurred / weight
