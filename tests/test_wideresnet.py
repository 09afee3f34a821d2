"""WideResNet against a numpy transcription of USB's `semilearn/nets/wrn/wrn.py` forward
(eval and train BatchNorm) on the same random weights, and WRN-28-2's parameter count
derived by hand from the layer list."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tlu import checks
from tlu.models import MODELS, build_model


def conv(x, w, b, stride, pad):
  """x (N, H, W, Ci), w (kh, kw, Ci, Co): torch's Conv2d(stride, padding=pad) in float64."""
  x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  kh, kw = w.shape[:2]
  windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
  windows = windows[:, ::stride, ::stride]          # (N, Ho, Wo, Ci, kh, kw)
  return np.einsum('nhwcij,ijco->nhwo', windows, w) + b


def bn(x, p, s, train, eps=1e-3):
  if train:
    mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))
  else:
    mean, var = s['mean'], s['var']
  return (x - mean) / np.sqrt(var + eps) * p['scale'] + p['bias']


def leaky(x):
  return np.where(x > 0, x, 0.1 * x)


def usb_forward(params, stats, x, depth, k, train):
  """USB's WideResNet.extract + adaptive_avg_pool2d, block by block (BasicBlock.forward)."""
  c = lambda p, y, stride, pad: conv(y, p['kernel'], p['bias'], stride, pad)
  out = c(params['conv1'], x, 1, 1)
  in_planes = 16
  for s, (width, stride) in enumerate(zip((16 * k, 32 * k, 64 * k), (1, 2, 2))):
    for b in range((depth - 4) // 6):
      name = f'block{s + 1}_layer{b}'
      p, st = params[name], stats[name]
      planes_in, block_stride = (in_planes, stride) if b == 0 else (width, 1)
      equal = planes_in == width
      if not equal:
        x_ = leaky(bn(out, p['bn1'], st['bn1'], train))
        h = x_
      else:
        h = leaky(bn(out, p['bn1'], st['bn1'], train))
        x_ = out
      h = leaky(bn(c(p['conv1'], h, block_stride, 1), p['bn2'], st['bn2'], train))
      h = c(p['conv2'], h, 1, 1)
      out = (x_ if equal else c(p['shortcut'], x_, block_stride, 0)) + h
    in_planes = width
  out = leaky(bn(out, params['bn_final'], stats['bn_final'], train))
  return out.mean((1, 2))


def _random(tree, seed, positive=False):
  leaves, treedef = jax.tree.flatten(tree)
  rng = np.random.default_rng(seed)
  new = [rng.uniform(0.5, 1.5, l.shape) if positive else rng.normal(0, 0.3, l.shape)
         for l in leaves]
  return jax.tree.unflatten(treedef, new)


@pytest.mark.parametrize('train', [False, True])
def test_features_equal_the_numpy_transcription_of_usb(train):
  depth, k = 10, 2                       # one block per stage: every block kind, in seconds
  model = build_model({'name': 'wideresnet', 'depth': depth, 'widen_factor': k,
                       'input_mean': (0.0,), 'input_std': (1.0,)})
  x = np.random.default_rng(0).normal(size=(3, 12, 12, 3))
  variables = model.init(jax.random.PRNGKey(0), jnp.asarray(x, jnp.float32))
  params = _random(variables['params']['backbone'], 1)
  stats = _random(variables['batch_stats']['backbone'], 2, positive=True)
  got, updates = model.apply(
      {'params': {'backbone': params}, 'batch_stats': {'backbone': stats}},
      jnp.asarray(x, jnp.float32), train=train, mutable=['batch_stats'])
  want = usb_forward(params, jax.tree.map(np.asarray, stats), x, depth, k, train)
  assert got['features'].shape == (3, 64 * k)
  np.testing.assert_allclose(np.asarray(got['features']), want, rtol=2e-4, atol=2e-4)
  if train:   # torch's momentum 0.001 on the running mean
    old = np.asarray(stats['bn_final']['mean'])
    new = np.asarray(updates['batch_stats']['backbone']['bn_final']['mean'])
    assert np.abs(new - old).max() > 0
    assert np.abs(new - old).max() < 0.01 * np.abs(old).max() + 1e-3


def test_wrn_28_2_has_the_parameter_count_of_the_layer_list():
  # Hand count: conv1 3*3*3*16 + 16; per block BN1 2*ci, conv1 9*ci*co + co, BN2 2*co,
  # conv2 9*co*co + co, and a 1x1 shortcut ci*co + co where ci != co; final BN 2*128.
  count = 3 * 3 * 3 * 16 + 16 + 2 * 128
  for width, first_in in ((32, 16), (64, 32), (128, 64)):
    for b in range(4):
      ci = first_in if b == 0 else width
      count += 2 * ci + 9 * ci * width + width + 2 * width + 9 * width * width + width
      count += (ci * width + width) if ci != width else 0
  # With a 10-class fc (128 * 10 + 10) and without the 2,032 conv biases USB's layers have
  # (16 + 2 * 4 * (32 + 64 + 128) + 32 + 64 + 128), the 1,467,610 that bias-free ports print
  # (FixMatch's "1.5M parameters").
  conv_biases = 16 + 2 * 4 * (32 + 64 + 128) + 32 + 64 + 128
  assert count + 1290 - conv_biases == 1_467_610
  model = build_model({'name': 'wideresnet'})
  variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
  n = sum(int(np.prod(l.shape)) for l in jax.tree.leaves(variables['params']))
  assert n == count
  out = jax.eval_shape(model.apply, variables, jnp.zeros((2, 32, 32, 3)))
  assert out['features'].shape == (2, 128)


@pytest.mark.parametrize('key, value', [('depth', 27), ('depth', 4), ('widen_factor', 0),
                                        ('leaky_slope', -0.1), ('depth', 28.0)])
def test_out_of_range_sizes_are_refused_by_the_registry_ranges(key, value):
  assert not checks.fits(value, MODELS.ranges('wideresnet')[key])
  assert checks.fits({'depth': 28, 'widen_factor': 2, 'leaky_slope': 0.1}[key],
                     MODELS.ranges('wideresnet')[key])
