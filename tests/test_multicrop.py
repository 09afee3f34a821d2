"""Multi-crop forward pass: the backbone once per resolution, the heads on every crop."""

import jax
import jax.numpy as jnp
import numpy as np

from tlu.models import build_model, heads as heads_lib
from tlu.unsupervised.multicrop import forward_views, resolution_groups


def test_resolution_groups_are_runs_of_consecutive_shapes():
  a, b = jnp.zeros((2, 8, 8, 1)), jnp.zeros((2, 4, 4, 1))
  assert [len(g) for g in resolution_groups([a, a, b, b, b])] == [2, 3]
  assert [len(g) for g in resolution_groups([a, b, a])] == [1, 1, 1]


def test_forward_views_matches_separate_passes_with_batchnorm():
  model = build_model({'name': 'cnn', 'widths': (4, 8), 'features': 6, 'pool': 'global'},
                      {'projector': heads_lib.mlp((5, 3), batch_norm=True),
                       'predictor': heads_lib.mlp((3,), input_name='projector')})
  variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  rng = np.random.default_rng(0)
  big = [jnp.asarray(rng.uniform(size=(3, 8, 8, 1)), jnp.float32) for _ in range(2)]
  small = [jnp.asarray(rng.uniform(size=(3, 4, 4, 1)), jnp.float32) for _ in range(3)]
  out, stats = forward_views(model, variables['params'], variables['batch_stats'], big + small,
                             ('projector', 'predictor'), True)
  assert out['features'].shape == (15, 6) and out['predictor'].shape == (15, 3)
  # Independently: train-mode BatchNorm over each resolution's crops, then over all 15.
  f1, s1 = model.apply(variables, jnp.concatenate(big), train=True, mutable=['batch_stats'])
  f2, s2 = model.apply({**variables, 'batch_stats': s1['batch_stats']}, jnp.concatenate(small),
                       train=True, mutable=['batch_stats'])
  features = jnp.concatenate([f1['features'], f2['features']])
  np.testing.assert_allclose(out['features'], features, rtol=1e-5, atol=1e-6)
  z, s3 = model.apply({**variables, 'batch_stats': s2['batch_stats']}, 'projector', features,
                      True, method='apply_head', mutable=['batch_stats'])
  np.testing.assert_allclose(out['projector'], z, rtol=1e-5, atol=1e-6)
  p = model.apply(variables, 'predictor', z, method='apply_head')
  np.testing.assert_allclose(out['predictor'], p, rtol=1e-5, atol=1e-6)
  for got, want in zip(jax.tree.leaves(stats), jax.tree.leaves(s3['batch_stats'])):
    np.testing.assert_allclose(got, want, rtol=1e-6)
  # The backbone's statistics saw both resolutions in turn, not only the first.
  assert not np.allclose(stats['backbone']['bn0']['mean'],
                         s1['batch_stats']['backbone']['bn0']['mean'])
