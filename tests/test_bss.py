"""BSS (Chen et al. 2019): the batch spectral shrinkage penalty on top of cross-entropy, against
a numpy transcription of TLlib's BatchSpectralShrinkage."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tlu import checks
from tlu.methods.bss import BSS, batch_spectral_shrinkage
from tlu.methods.facts import RunFacts
from tlu.methods.supervised import Supervised
from tlu.models import build_model


def tllib_bss(feature, k):
  """tllib/regularization/bss.py: svd of feature.t(), sum of s[num - 1 - i]^2, i < k."""
  s = np.linalg.svd(np.asarray(feature, np.float64).T, compute_uv=False)
  return sum(s[len(s) - 1 - i] ** 2 for i in range(k))


def method(cls=BSS, **overrides):
  config = ml_collections.ConfigDict({**BSS.example_config(), **overrides})
  model = build_model({'name': 'cnn', 'widths': (4,), 'features': 8}, cls.heads(config, 3))
  return cls(config, model, RunFacts(num_steps=10, batch_size=6, epoch_steps=1,
                                     num_examples=6)), config


@pytest.mark.parametrize('shape,k', [((6, 8), 1), ((6, 8), 3), ((10, 4), 2), ((5, 5), 5)])
def test_penalty_is_tllibs(shape, k):
  f = np.random.default_rng(sum(shape) + k).normal(size=shape).astype(np.float32)
  np.testing.assert_allclose(float(batch_spectral_shrinkage(jnp.asarray(f), k)),
                             tllib_bss(f, k), rtol=1e-4)


def test_gradient_by_hand():
  # F = diag(3, 1) over 3 rows: sigma = (3, 1); the smallest, 1, has u = e2, v = e2, so
  # d sigma^2 / dF = 2 sigma u v^T: 2 at (1, 1), 0 elsewhere; k = 2 adds 2 * 3 at (0, 0).
  f = jnp.array([[3.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
  np.testing.assert_allclose(jax.grad(batch_spectral_shrinkage)(f, 1),
                             [[0, 0], [0, 2], [0, 0]], atol=1e-5)
  np.testing.assert_allclose(jax.grad(batch_spectral_shrinkage)(f, 2),
                             [[6, 0], [0, 2], [0, 0]], atol=1e-5)


def test_loss_is_cross_entropy_plus_eta_times_the_penalty():
  m, _ = method(bss_weight=0.3, bss_k=2)
  variables = m.model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  batch = {'image': np.random.default_rng(0).integers(0, 256, (6, 8, 8, 1), dtype=np.uint8),
           'label': np.array([0, 1, 2, 0, 1, 2])}
  state = {'batch_stats': variables['batch_stats'], 'step': jnp.zeros((), jnp.int32),
           'extra': m.init_extra(variables, jax.random.key(1))}
  loss, aux = m.objective(variables['params'], state, batch, jax.random.key(2))
  ce, ce_aux = method(Supervised)[0].objective(variables['params'], state, batch,
                                              jax.random.key(2))
  penalty = tllib_bss(ce_aux.outputs['features'], 2)
  assert penalty > 1e-3   # the test would not see a missing term otherwise
  np.testing.assert_allclose(float(loss), float(ce) + 0.3 * penalty, rtol=1e-5)
  np.testing.assert_allclose(float(aux.metrics['bss_penalty']), penalty, rtol=1e-4)


@pytest.mark.parametrize('overrides,message', [
    ({'bss_weight': -1.0}, 'method.bss_weight=-1.0: must be a finite number >= 0'),
    ({'bss_k': 0}, 'method.bss_k=0: must be an integer >= 1'),
    ({'bss_k': 1.5}, 'method.bss_k=1.5: must be an integer >= 1'),
    ({'bss_k': True}, 'method.bss_k=True: must be an integer >= 1'),
])
def test_ranges(overrides, message):
  config = ml_collections.ConfigDict({**BSS.example_config(), **overrides})
  with pytest.raises(checks.RangeError, match=message):
    checks.check_values(config, BSS.ranges, 'method.')


def test_k_above_the_batch_size_is_refused():
  config = ml_collections.ConfigDict({**BSS.example_config(), 'bss_k': 9})
  with pytest.raises(ValueError, match='bss_k=9 must be <= the batch size 8'):
    BSS.check_batch(config, 8)
  BSS.check_batch(config, 9)
  with pytest.raises(ValueError, match='bss_k=3 exceeds the 2 singular values'):
    batch_spectral_shrinkage(jnp.ones((4, 2)), 3)


class Source:
  def __init__(self, x, y):
    self.x, self.y = x, y

  def __len__(self):
    return len(self.x)

  def __getitem__(self, i):
    return {'image': self.x[i], 'label': self.y[i]}


def test_a_finetune_cell_trains_with_bss_from_the_source(tmp_path):
  # The transfer stage's fine-tuning strategy with method 'bss' (strategies.fit).
  from configs import digits_transfer  # pylint: disable=import-outside-toplevel
  from tlu.train import mesh as mesh_lib, task  # pylint: disable=import-outside-toplevel
  from tlu.transfer import strategies  # pylint: disable=import-outside-toplevel
  config = digits_transfer.get_config('finetune')
  config.method = ml_collections.ConfigDict({**BSS.example_config(), 'name': 'bss',
                                             'bss_weight': 0.1, 'bss_k': 2})
  config.update(steps=3, batch_size=4, eval_batch_size=4)
  model_cfg = {'name': 'cnn', 'widths': (4,), 'features': 8}
  source = build_model(model_cfg, BSS.heads(config.method, 5)).init(
      jax.random.key(7), jnp.zeros((1, 8, 8, 1)))
  rng, y = np.random.default_rng(3), np.array([0, 1, 2] * 4)
  x = lambda: rng.integers(0, 256, (12, 8, 8, 1), dtype=np.uint8)
  splits = task.Splits(train=Source(x(), y), test=Source(x(), y), num_classes=3,
                       image_shape=(8, 8, 1))
  trainer = task.Trainer(mesh_lib.make_mesh(jax.devices()[:1]))
  summary, _ = strategies.fit(trainer, config, 'finetune', tmp_path / 'cell', splits,
                              model=model_cfg, source=source, seed=0)
  assert summary['steps'] == 3 and summary['train_bss_penalty'] > 0
  assert np.isfinite(summary['train_loss'])
