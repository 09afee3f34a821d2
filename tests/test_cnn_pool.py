"""SmallCNN's global pooling: one set of weights for every input size, default unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tlu.models import build_model
from tlu.models.cnn import SmallCNN


def test_global_pool_feeds_fc_the_mean_of_the_last_conv_map():
  cnn = SmallCNN(widths=(4, 6), features=5, use_bn=False, pool='global')
  x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 8, 8, 1)), jnp.float32)
  v = cnn.init(jax.random.key(0), x)
  p = jax.tree.map(np.asarray, v['params'])
  assert p['fc']['kernel'].shape == (6, 5)   # widths[-1], whatever the input size

  def conv(h, layer):   # 3x3 'SAME' conv + bias, relu, 2x2 max-pool, in numpy
    k, b = layer['kernel'], layer['bias']
    n, hh, ww, _ = h.shape
    padded = np.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, hh, ww, k.shape[-1]))
    for i in range(3):
      for j in range(3):
        out += padded[:, i:i + hh, j:j + ww] @ k[i, j]
    out = np.maximum(out + b, 0)
    return out.reshape(n, hh // 2, 2, ww // 2, 2, -1).max(axis=(2, 4))

  h = conv(conv(np.asarray(x, np.float64), p['conv0']), p['conv1'])
  want = np.maximum(h.mean(axis=(1, 2)) @ p['fc']['kernel'] + p['fc']['bias'], 0)
  np.testing.assert_allclose(cnn.apply(v, x), want, rtol=1e-4, atol=1e-5)
  assert cnn.apply(v, jnp.ones((2, 4, 4, 1))).shape == (2, 5)   # a smaller crop fits

  # features=0: no fc layer, the pooled map itself (ResNet-style), same conv weights.
  bare = SmallCNN(widths=(4, 6), features=0, use_bn=False, pool='global')
  conv_only = {'params': {k: v['params'][k] for k in ('conv0', 'conv1')}}
  assert set(bare.init(jax.random.key(0), x)['params']) == {'conv0', 'conv1'}
  np.testing.assert_allclose(bare.apply(conv_only, x), h.mean(axis=(1, 2)), rtol=1e-4, atol=1e-5)


def test_default_pool_flattens_as_before_and_registry_passes_the_key():
  x = jnp.zeros((1, 8, 8, 1))
  flat = build_model({'name': 'cnn', 'widths': (8, 16), 'features': 16})
  pooled = build_model({'name': 'cnn', 'widths': (8, 16), 'features': 16, 'pool': 'global'})
  assert flat.backbone.pool == 'flatten' and pooled.backbone.pool == 'global'
  assert flat.init(jax.random.key(0), x)['params']['backbone']['fc']['kernel'].shape == (64, 16)
  assert pooled.init(jax.random.key(0), x)['params']['backbone']['fc']['kernel'].shape == (16, 16)
  with pytest.raises(ValueError, match='model.pool'):
    build_model({'name': 'cnn', 'pool': 'max'}).init(jax.random.key(0), x)
  with pytest.raises(ValueError, match='model.features=0'):   # only the CNN goes without fc
    build_model({'name': 'mlp', 'features': 0})
