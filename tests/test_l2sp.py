"""L2-SP: the penalty of Li et al. (2018, eq. 3) on top of cross-entropy, against numpy."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from tlu.methods.facts import RunFacts
from tlu.methods.l2sp import L2SP
from tlu.methods.supervised import Supervised
from tlu.models import build_model
from method_block import check_block


def method(cls=L2SP, **overrides):
  config = ml_collections.ConfigDict({**L2SP.example_config(), **overrides})
  model = build_model({'name': 'cnn', 'widths': (4,), 'features': 8}, cls.heads(config, 3))
  return cls(config, model, RunFacts(num_steps=10, batch_size=4, epoch_steps=1,
                                     num_examples=4)), config


def flat(tree, prefix=''):
  out = {}
  for k, v in tree.items():
    out.update(flat(v, f'{prefix}{k}/') if isinstance(v, dict) else {prefix + k: np.asarray(v)})
  return out


def test_loss_is_cross_entropy_plus_the_penalty():
  m, config = method(alpha=0.3, beta=0.02)
  variables = m.model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  extra = m.init_extra(variables, jax.random.key(1))
  moved = jax.tree.map(lambda w: w + 0.1 * jnp.sin(jnp.arange(w.size).reshape(w.shape)),
                       variables['params'])
  batch = {'image': np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1), dtype=np.uint8),
           'label': np.array([0, 1, 2, 0])}
  state = {'batch_stats': variables['batch_stats'], 'step': jnp.zeros((), jnp.int32),
           'extra': extra}
  loss, aux = m.objective(moved, state, batch, jax.random.key(2))
  ce, _ = method(Supervised)[0].objective(moved, state, batch, jax.random.key(2))
  w, w0 = flat(moved), flat(variables['params'])
  to_source = sum(np.sum((w[p].astype(np.float64) - w0[p]) ** 2) for p in w
                  if p.startswith('backbone/'))
  rest = sum(np.sum(w[p].astype(np.float64) ** 2) for p in w if not p.startswith('backbone/'))
  np.testing.assert_allclose(float(loss), float(ce) + 0.3 / 2 * to_source + 0.02 / 2 * rest,
                             rtol=1e-5)
  np.testing.assert_allclose(float(aux.metrics['l2sp_distance']), np.sqrt(to_source), rtol=1e-5)
  assert set(flat(extra['source'])) == {p for p in w0 if p.startswith('backbone/')}


def test_the_shared_layers_are_pulled_back_to_the_source():
  m, _ = method(alpha=1.0, beta=0.0)
  variables = m.model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  state = {'batch_stats': variables['batch_stats'], 'step': jnp.zeros((), jnp.int32),
           'extra': m.init_extra(variables, jax.random.key(1))}
  moved = jax.tree.map(lambda w: w + 1.0, variables['params'])
  batch = {'image': np.zeros((4, 8, 8, 1), np.uint8), 'label': np.zeros(4, int)}
  grads = jax.grad(lambda p: m.loss_fn(p, state, batch, jax.random.key(0)).loss)(moved)
  ce_grads = jax.grad(lambda p: method(Supervised)[0].loss_fn(p, state, batch,
                                                               jax.random.key(0)).loss)(moved)
  penalty = jax.tree.map(lambda a, b: a - b, grads, ce_grads)   # alpha (w - w0) = 1 on shared
  for path, g in flat(penalty).items():
    np.testing.assert_allclose(g, 1.0 if path.startswith('backbone/') else 0.0, atol=1e-5)


@pytest.mark.parametrize('overrides,message', [
    ({'alpha': -1.0}, 'method.alpha=-1.0: must be a finite number >= 0'),
    ({'alpha': True}, 'method.alpha=True: must be a finite number >= 0'),
    ({'beta': float('nan')}, 'method.beta=nan: must be'),
    ({'shared': 'backbone/.*'}, 'must be a tuple of path regexes'),
    ({'shared': ('backbone/(',)}, 'is not a regex'),
])
def test_check(overrides, message):
  with pytest.raises(ValueError, match=message):
    check_block(L2SP, ml_collections.ConfigDict({**L2SP.example_config(), **overrides}))


def test_shared_regexes_that_name_nothing_are_refused():
  m, _ = method(shared=('trunk/.*',))
  variables = m.model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  with pytest.raises(ValueError, match='names no parameter'):
    m.init_extra(variables, jax.random.key(1))
