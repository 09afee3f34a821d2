"""Vision Transformer (Dosovitskiy et al. 2021) with big_vision's parameter layout.

Parameter paths are big_vision's (`big_vision/models/vit.py`), so its .npz files and
timm's converted weights load leaf by leaf (`tlu.convert`)::

  embedding/{kernel (p, p, C, D), bias}         patches -> tokens (a stride-p conv)
  pos_embedding (1, g*g, D)                     learned, added before the class token
  cls (1, 1, D)                                 class token (pool='tok' only)
  Transformer/encoderblock_{i}/LayerNorm_0, MultiHeadDotProductAttention_0/{query,key,value}
      (kernel (D, heads, D/heads)), out (kernel (heads, D/heads, D)), LayerNorm_1,
      MlpBlock_0/Dense_0 (D -> mlp_dim), Dense_1 (mlp_dim -> D)
  Transformer/encoder_norm                      final LayerNorm (eps 1e-6)
  pre_logits (rep, tanh)                        only with representation_size > 0

Position embeddings are learned (posemb='learn') or fixed 2-d sine-cosine (posemb=
'sincos2d', as big_vision's "plain ViT" ImageNet-1k baselines: no parameter). Learned ones
are a grid for `image_size`; an input of another size gets them resampled (bilinear,
corners aligned: what big_vision's `resample_posemb` does with scipy.ndimage.zoom(order=1))
inside the forward pass, so one checkpoint serves any image
size. The backbone returns the class token (pool='tok') or the mean token (pool='gap')
after the final LayerNorm: (N, H, W, C) -> (N, D) float32. GELU is the tanh approximation
(flax and big_vision's default) unless approximate_gelu=False (timm and torch use the
exact erf form).
"""

import functools

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from tlu import checks
from tlu.models import MODELS

# Width, depth, MLP width, heads: Table 1 of Dosovitskiy et al. and big_vision's decode_variant.
VARIANTS = {'S': (384, 12, 1536, 6), 'B': (768, 12, 3072, 12), 'L': (1024, 24, 4096, 16)}
POOLS = ('tok', 'gap')
RANGES = {k: checks.POSITIVE_INT for k in ('width', 'depth', 'mlp_dim', 'num_heads', 'patch_size',
                                           'image_size')}
RANGES['representation_size'] = checks.NON_NEGATIVE_INT
POSEMBS = ('learn', 'sincos2d')


def variant(name):
  """'S/16' -> dict(width, depth, mlp_dim, num_heads, patch_size)."""
  size, patch = name.split('/')
  width, depth, mlp_dim, num_heads = VARIANTS[size]
  return dict(width=width, depth=depth, mlp_dim=mlp_dim, num_heads=num_heads,
              patch_size=int(patch))


def posemb_sincos_2d(h, w, width, temperature=10_000.0):
  """(1, h*w, width) fixed position embeddings: for each of the width/4 frequencies
  omega_k = temperature^(-k / (width/4 - 1)), sin and cos of x * omega then of y * omega
  (row-major grid positions), as big_vision's `posemb_sincos_2d` (after MoCo v3)."""
  if width % 4:
    raise ValueError(f'sincos2d position embeddings need a width divisible by 4, not {width}')
  quarter = width // 4
  omega = 1.0 / temperature ** (np.arange(quarter) / max(quarter - 1, 1))
  y, x = np.mgrid[:h, :w]
  x = x.reshape(-1, 1) * omega
  y = y.reshape(-1, 1) * omega
  return np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1)[None].astype(
      np.float32)


def linear_interpolation_matrix(n_in, n_out):
  """(n_out, n_in) weights of 1-d linear interpolation with the end points aligned.

  Output i samples input coordinate i * (n_in - 1) / (n_out - 1), as scipy.ndimage.zoom
  with order=1 (its default grid_mode=False) does.
  """
  if n_out == 1 or n_in == 1:
    m = np.zeros((n_out, n_in))
    m[:, 0] = 1.0
    return m
  pos = np.arange(n_out) * (n_in - 1) / (n_out - 1)
  lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
  frac = pos - lo
  m = np.zeros((n_out, n_in))
  m[np.arange(n_out), lo] = 1 - frac
  m[np.arange(n_out), lo + 1] += frac
  return m


def resample_posemb(posemb, grid):
  """(1, h*w, D) position embeddings of a square grid -> (1, grid[0]*grid[1], D).

  Bilinear with aligned corners (big_vision's resample_posemb); numpy or jax arrays
  (jax in, jax out; the weights are constants).
  """
  n, d = posemb.shape[1], posemb.shape[2]
  old = int(round(np.sqrt(n)))
  if old * old != n:
    raise ValueError(f'{n} position embeddings are not a square grid')
  if tuple(grid) == (old, old):
    return posemb
  xp = jnp if not isinstance(posemb, np.ndarray) else np
  rows = xp.asarray(linear_interpolation_matrix(old, grid[0]), posemb.dtype)
  cols = xp.asarray(linear_interpolation_matrix(old, grid[1]), posemb.dtype)
  g = posemb.reshape(old, old, d)
  g = xp.einsum('ih,hwd->iwd', rows, g)
  g = xp.einsum('jw,iwd->ijd', cols, g)
  return g.reshape(1, grid[0] * grid[1], d)


class MlpBlock(nn.Module):
  mlp_dim: int
  approximate_gelu: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    inits = dict(kernel_init=nn.initializers.xavier_uniform(),
                 bias_init=nn.initializers.normal(stddev=1e-6), dtype=self.dtype)
    d = x.shape[-1]
    x = nn.Dense(self.mlp_dim, name='Dense_0', **inits)(x)
    x = nn.gelu(x, approximate=self.approximate_gelu)
    return nn.Dense(d, name='Dense_1', **inits)(x)


class Encoder1DBlock(nn.Module):
  """x + MHSA(LN(x)), then x + MLP(LN(x)) (pre-norm)."""
  mlp_dim: int
  num_heads: int
  approximate_gelu: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name='LayerNorm_0')(x)
    y = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, kernel_init=nn.initializers.xavier_uniform(),
        dtype=self.dtype, deterministic=True, name='MultiHeadDotProductAttention_0')(y, y)
    x = x + y
    y = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name='LayerNorm_1')(x)
    y = MlpBlock(self.mlp_dim, self.approximate_gelu, self.dtype, name='MlpBlock_0')(y)
    return x + y


class Encoder(nn.Module):
  depth: int
  mlp_dim: int
  num_heads: int
  approximate_gelu: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    for i in range(self.depth):
      x = Encoder1DBlock(self.mlp_dim, self.num_heads, self.approximate_gelu, self.dtype,
                         name=f'encoderblock_{i}')(x)
    return nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name='encoder_norm')(x)


class ViT(nn.Module):
  """ViT backbone; sizes from `variant('B/16')` or given one by one.

  image_size: the side of the square image the position-embedding grid is made for
  (image_size // patch_size tokens per side). pool: 'tok' (class token) | 'gap' (mean
  of the tokens). posemb: 'learn' | 'sincos2d'. representation_size > 0: a Dense + tanh
  `pre_logits` layer on top.
  """
  width: int = 768
  depth: int = 12
  mlp_dim: int = 3072
  num_heads: int = 12
  patch_size: int = 16
  image_size: int = 224
  pool: str = 'tok'
  posemb: str = 'learn'
  representation_size: int = 0
  approximate_gelu: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train=False):
    """x: (N, H, W, C) normalised images, H and W multiples of patch_size (else cropped)."""
    del train   # no dropout, no BatchNorm
    if self.pool not in POOLS:
      raise ValueError(f'unknown pool {self.pool!r}; use one of {POOLS}')
    if self.posemb not in POSEMBS:
      raise ValueError(f'unknown posemb {self.posemb!r}; use one of {POSEMBS}')
    p = self.patch_size
    x = nn.Conv(self.width, (p, p), strides=(p, p), padding='VALID', dtype=self.dtype,
                name='embedding')(x.astype(self.dtype))
    n, h, w, c = x.shape
    x = x.reshape(n, h * w, c)
    if self.posemb == 'sincos2d':
      x = x + jnp.asarray(posemb_sincos_2d(h, w, c), x.dtype)
    else:
      grid = max(self.image_size // p, 1)
      posemb = self.param('pos_embedding', nn.initializers.normal(stddev=1 / np.sqrt(c)),
                          (1, grid * grid, c), jnp.float32)
      x = x + resample_posemb(posemb, (h, w)).astype(x.dtype)
    if self.pool == 'tok':
      cls = self.param('cls', nn.initializers.zeros, (1, 1, c), jnp.float32)
      x = jnp.concatenate([jnp.tile(cls.astype(x.dtype), (n, 1, 1)), x], axis=1)
    x = Encoder(self.depth, self.mlp_dim, self.num_heads, self.approximate_gelu, self.dtype,
                name='Transformer')(x)
    x = x[:, 0] if self.pool == 'tok' else jnp.mean(x, axis=1)
    if self.representation_size:
      x = jnp.tanh(nn.Dense(self.representation_size, dtype=self.dtype, name='pre_logits')(x))
    return x.astype(jnp.float32)


def build(name, c):
  """ViT of variant `name` ('S/16'); a config key of the same name overrides a size."""
  sizes = {k: int(c.get(k, v)) for k, v in variant(name).items()}
  return ViT(**sizes, image_size=int(c.get('image_size', 224)), pool=c.get('pool', 'tok'),
             posemb=c.get('posemb', 'learn'),
             representation_size=int(c.get('representation_size', 0)),
             approximate_gelu=bool(c.get('approximate_gelu', True)),
             dtype=jnp.dtype(c.get('dtype', 'float32')))


for _size in VARIANTS:
  for _patch in (16, 32):
    MODELS.register(f'vit_{_size.lower()}{_patch}', ranges=RANGES)(
        functools.partial(build, f'{_size}/{_patch}'))
