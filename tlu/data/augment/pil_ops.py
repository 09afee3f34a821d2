"""Pillow's image ops, transcribed for one (H, W, C) image of grey levels, jit- and vmap-able.

RandAugment as FixMatch and USB use it runs Pillow's `ImageOps` / `ImageEnhance` /
`Image.transform` on uint8 images; these are the same ops on a float32 image holding
integer levels 0..255 (C = 1, Pillow's mode 'L', or C = 3, 'RGB'), returning integer
levels again, so a chain of ops stays on Pillow's uint8 grid:
  - point ops (autocontrast, equalize, invert, posterize, solarize) are Pillow's lookup
    tables, computed per channel from the image's histogram;
  - enhancements (brightness, color, contrast, sharpness) are `Image.blend(degenerate,
    image, factor)`: degenerate + factor * (image - degenerate) in float32, clipped and
    truncated, with Pillow's degenerate images (black; the 'L' conversion
    (19595 R + 38470 G + 7471 B + 2^15) >> 16; its rounded mean; the 3x3 SMOOTH filter
    [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13 with the border copied);
  - geometric ops are `Image.transform(size, AFFINE, (a, b, c, d, e, f))` with Pillow's
    default nearest-neighbour resampling: output pixel (x, y) takes the input at
    floor(a (x + .5) + b (y + .5) + c), floor(d (x + .5) + e (y + .5) + f), black outside.
Pillow computes those coordinates in float64 (and some paths in 16.16 fixed point),
these in float32, so a coordinate within ~1e-5 of a pixel edge may round the other way.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

LEVELS = 256


def _per_channel(fn, image):
  """fn((H, W) levels) -> (H, W) applied to every channel of (H, W, C)."""
  return jax.vmap(fn, in_axes=2, out_axes=2)(image)


def _histogram(channel):
  """(H, W) integer levels -> (256,) int32 counts."""
  return jnp.zeros((LEVELS,), jnp.int32).at[channel.astype(jnp.int32).ravel()].add(1)


def _apply_lut(channel, lut):
  return lut[channel.astype(jnp.int32)].astype(jnp.float32)


def blend(degenerate, image, factor):
  """Pillow's `Image.blend(degenerate, image, factor)` on levels: truncated float32 blend."""
  factor = jnp.asarray(factor, jnp.float32)
  out = degenerate + factor * (image - degenerate)
  return jnp.floor(jnp.clip(out, 0.0, 255.0))


def luma(image):
  """Pillow's RGB -> 'L' conversion of (H, W, 3) levels -> (H, W, 1); (H, W, 1) as is."""
  if image.shape[-1] == 1:
    return image
  rgb = image.astype(jnp.int32)
  weighted = rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000
  return (weighted >> 16).astype(jnp.float32)[..., None]


# ---------------------------------------------------------------- point ops (lookup tables)

def invert(image, _=None):
  """`ImageOps.invert`: 255 - x."""
  return 255.0 - image


def posterize(image, bits):
  """`ImageOps.posterize(image, bits)`: keep the top `bits` (1..8) bits of each level."""
  step = jnp.exp2(8.0 - jnp.asarray(bits, jnp.float32))
  return jnp.floor(image / step) * step


def solarize(image, threshold):
  """`ImageOps.solarize(image, threshold)`: x if x < threshold else 255 - x."""
  return jnp.where(image < threshold, image, 255.0 - image)


@functools.lru_cache(maxsize=1)
def _autocontrast_corrections():
  """Sorted keys lo * 2^16 + hi * 2^8 + i where Pillow's float64 LUT entry
  int(i * (255 / (hi - lo)) - lo * (255 / (hi - lo))) is one below the exact
  floor(255 (i - lo) / (hi - lo)) (12,094 of the 8.4M (lo, hi, i); never above)."""
  keys = []
  i = np.arange(LEVELS)[None, :]
  for lo in range(LEVELS - 1):
    hi = np.arange(lo + 1, LEVELS)[:, None]
    scale = 255.0 / (hi - lo)
    pillow = np.clip(np.trunc(i * scale + (-lo * scale)), 0, 255)
    exact = np.clip((255 * (i - lo)) // (hi - lo), 0, 255)
    rows, cols = np.nonzero(pillow != exact)
    keys.append(lo * 65536 + (rows + lo + 1) * 256 + cols)
  return np.sort(np.concatenate(keys)).astype(np.int32)


def autocontrast(image, _=None):
  """`ImageOps.autocontrast(image)` (cutoff 0): each channel's [min, max] stretched to
  [0, 255] by Pillow's LUT int(i * 255 / (hi - lo) - lo * 255 / (hi - lo)), with its
  float64 rounding; a constant channel is kept."""
  corrections = jnp.asarray(_autocontrast_corrections())
  levels = jnp.arange(LEVELS, dtype=jnp.int32)

  def channel_fn(channel):
    lo = jnp.min(channel).astype(jnp.int32)
    hi = jnp.max(channel).astype(jnp.int32)
    span = jnp.maximum(hi - lo, 1)
    lut = jnp.clip((255 * (levels - lo)) // span, 0, 255)
    keys = lo * 65536 + hi * 256 + levels
    pos = jnp.clip(jnp.searchsorted(corrections, keys), 0, corrections.shape[0] - 1)
    lut = lut - (corrections[pos] == keys).astype(jnp.int32)
    lut = jnp.where(hi > lo, lut, levels)
    return _apply_lut(channel, lut)

  return _per_channel(channel_fn, image)


def equalize(image, _=None):
  """`ImageOps.equalize(image)`: per channel, step = (N - h[last level]) // 255 and
  LUT[i] = (step // 2 + sum_{j < i} h[j]) // step, clipped to 255 (Pillow >= 10; identity
  when one level is used or step is 0)."""
  levels = jnp.arange(LEVELS, dtype=jnp.int32)

  def channel_fn(channel):
    h = _histogram(channel)
    last = jnp.max(jnp.where(h > 0, levels, -1))
    total = jnp.sum(h)
    step = (total - h[last]) // 255
    used = jnp.sum(h > 0)
    before = jnp.cumsum(h) - h
    lut = jnp.clip((step // 2 + before) // jnp.maximum(step, 1), 0, 255)
    lut = jnp.where((used > 1) & (step > 0), lut, levels)
    return _apply_lut(channel, lut)

  return _per_channel(channel_fn, image)


# ---------------------------------------------------------------- enhancements (blends)

def brightness(image, factor):
  """`ImageEnhance.Brightness(image).enhance(factor)`: blend with black."""
  return blend(jnp.zeros_like(image), image, factor)


def color(image, factor):
  """`ImageEnhance.Color(image).enhance(factor)`: blend with the 'L' image (C = 1: identity)."""
  if image.shape[-1] == 1:
    return image
  return blend(jnp.broadcast_to(luma(image), image.shape), image, factor)


def contrast(image, factor):
  """`ImageEnhance.Contrast(image).enhance(factor)`: blend with the 'L' mean,
  int(mean + 0.5), computed here in exact integer arithmetic."""
  grey = luma(image).astype(jnp.int32)
  n = grey.size
  mean = (2 * jnp.sum(grey) + n) // (2 * n)
  return blend(jnp.full_like(image, mean.astype(jnp.float32)), image, factor)


def smooth(image):
  """`image.filter(ImageFilter.SMOOTH)`: the 3x3 kernel [[1,1,1],[1,5,1],[1,1,1]] / 13 in
  float32 as Pillow sums it (rows below, centre, above; +0.5, truncated), border kept."""
  k_side = np.float32(1.0) / np.float32(13.0)
  k_mid = np.float32(5.0) / np.float32(13.0)

  def row(r, mid_weight):   # r: (H, W, C) rows of levels; the 1x3 sum at interior columns
    return (r[:, :-2] * k_side + r[:, 1:-1] * mid_weight) + r[:, 2:] * k_side

  below, centre, above = image[2:], image[1:-1], image[:-2]
  total = ((jnp.float32(0.5) + row(below, k_side)) + row(centre, k_mid)) + row(above, k_side)
  inner = jnp.floor(jnp.clip(total, 0.0, 255.0))
  return image.at[1:-1, 1:-1].set(inner)


def sharpness(image, factor):
  """`ImageEnhance.Sharpness(image).enhance(factor)`: blend with `smooth(image)`."""
  return blend(smooth(image), image, factor)


# ---------------------------------------------------------------- geometric (affine, nearest)

def affine(image, coefficients, fill=0.0):
  """`image.transform(image.size, Image.AFFINE, (a, b, c, d, e, f))`, nearest neighbour.

  Output pixel (column x, row y) samples the input at column floor(a (x + .5) + b (y + .5)
  + c), row floor(d (x + .5) + e (y + .5) + f); pixels from outside take `fill`.
  coefficients: six scalars (traced is fine). Returns (H, W, C).
  """
  a, b, c, d, e, f = (jnp.asarray(v, jnp.float32) for v in coefficients)
  height, width = image.shape[0], image.shape[1]
  y, x = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32) + 0.5,
                      jnp.arange(width, dtype=jnp.float32) + 0.5, indexing='ij')
  src_x = jnp.floor(a * x + b * y + c).astype(jnp.int32)
  src_y = jnp.floor(d * x + e * y + f).astype(jnp.int32)
  inside = (src_x >= 0) & (src_x < width) & (src_y >= 0) & (src_y < height)
  pixels = image[jnp.clip(src_y, 0, height - 1), jnp.clip(src_x, 0, width - 1)]
  return jnp.where(inside[..., None], pixels, fill)


def rotate(image, degrees):
  """`image.rotate(degrees)`: counter-clockwise about (W / 2, H / 2), nearest, black fill."""
  height, width = image.shape[0], image.shape[1]
  angle = -jnp.deg2rad(jnp.asarray(degrees, jnp.float32))
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  cx, cy = width / 2.0, height / 2.0
  c = cos * -cx + sin * -cy + cx
  f = -sin * -cx + cos * -cy + cy
  return affine(image, (cos, sin, c, -sin, cos, f))


def shear_x(image, v):
  """`transform(AFFINE, (1, v, 0, 0, 1, 0))`."""
  return affine(image, (1.0, v, 0.0, 0.0, 1.0, 0.0))


def shear_y(image, v):
  """`transform(AFFINE, (1, 0, 0, v, 1, 0))`."""
  return affine(image, (1.0, 0.0, 0.0, v, 1.0, 0.0))


def translate_x(image, pixels):
  """`transform(AFFINE, (1, 0, pixels, 0, 1, 0))`: content moves left by `pixels`."""
  return affine(image, (1.0, 0.0, pixels, 0.0, 1.0, 0.0))


def translate_y(image, pixels):
  """`transform(AFFINE, (1, 0, 0, 0, 1, pixels))`: content moves up by `pixels`."""
  return affine(image, (1.0, 0.0, 0.0, 0.0, 1.0, pixels))
