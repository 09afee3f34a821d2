"""Convolution as one matrix product (im2col), a drop-in for `lax.conv_general_dilated`.

XLA:CPU's convolution is slow on small feature maps: on a 2-core CPU a 3x3 'SAME' conv of a
(512, 2, 2, 128) batch to 256 channels takes ~0.7 s forward and backward, the same product
as one (2048, 1152) x (1152, 256) matmul on shifted copies of the input takes ~0.03 s
(`benchmarks/conv.py`). `nn.Conv(..., conv_general_dilated=conv_general_dilated)` keeps
the module's parameters (`kernel` (kh, kw, C, O), `bias`) and outputs up to float32
round-off; only the computation differs. Gradients come from JAX's autodiff of slices,
a concatenation and a dot.
"""

import jax.numpy as jnp
from jax import lax

NHWC = ((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))   # lax's (lhs, rhs, out) specs of NHWC/HWIO


def _is_nhwc(dimension_numbers):
  if dimension_numbers is None:
    return False
  specs = tuple(tuple(s) for s in dimension_numbers)
  return specs == NHWC


def patches(x, kernel_size, strides, pads):
  """x (N, H, W, C) -> (N, Ho, Wo, kh * kw * C): each output position's receptive field,
  ordered (i, j, c) like a row-major flattening of an HWIO kernel's first three axes."""
  (kh, kw), (sh, sw) = kernel_size, strides
  x = jnp.pad(x, ((0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0)))
  n, h, w, c = x.shape
  ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
  cols = [lax.slice(x, (0, i, j, 0), (n, i + sh * (ho - 1) + 1, j + sw * (wo - 1) + 1, c),
                    (1, sh, sw, 1))
          for i in range(kh) for j in range(kw)]
  return cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None, **kwargs):
  """`lax.conv_general_dilated`'s signature. 2-D NHWC/HWIO convolutions without dilation or
  groups run as patches @ kernel; anything else goes to `lax.conv_general_dilated`.

  lhs: (N, H, W, C); rhs: (kh, kw, C, O); padding: 'SAME', 'VALID' or ((lo, hi), (lo, hi)).
  Returns (N, Ho, Wo, O), Ho = (H + lo + hi - kh) // stride + 1 as lax's.
  """
  simple = (lhs.ndim == 4 and _is_nhwc(dimension_numbers) and feature_group_count == 1
            and all(d == 1 for d in (lhs_dilation or (1, 1)))
            and all(d == 1 for d in (rhs_dilation or (1, 1))) and not kwargs)
  if not simple:
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation,
                                    rhs_dilation, dimension_numbers, feature_group_count,
                                    precision=precision, **kwargs)
  kh, kw, c, o = rhs.shape
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], (kh, kw), window_strides, padding)
  cols = patches(lhs, (kh, kw), window_strides, padding)
  return lax.dot_general(cols, rhs.reshape(kh * kw * c, o), (((3,), (0,)), ((), ())),
                         precision=precision)


def small_map_conv(lhs, rhs, *args, max_size=8, **kwargs):
  """`conv_general_dilated` (im2col) where the input map is at most `max_size` on each side,
  `lax.conv_general_dilated` on larger maps (where XLA's own convolution is the faster)."""
  conv = conv_general_dilated if max(lhs.shape[1:3]) <= max_size else lax.conv_general_dilated
  return conv(lhs, rhs, *args, **kwargs)


# How a model's convolutions compute (its `conv` option); parameters are the same for all.
CONVS = {'xla': lax.conv_general_dilated, 'matmul': conv_general_dilated,
         'matmul_small': small_map_conv}


def get(name, key='model.conv'):
  """The convolution function named `name` in CONVS, or a ValueError naming `key`."""
  if name not in CONVS:
    raise ValueError(f"{key}={name!r}: must be one of {', '.join(CONVS)}")
  return CONVS[name]
