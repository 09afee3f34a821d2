"""DELTA (Li et al. 2019): the attention-weighted feature-map penalty and its channel attention,
against numpy transcriptions of TLlib's (tllib/regularization/delta.py and
examples/task_adaptation/image_classification/delta.py calculate_channel_attention)."""

import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from tlu import checks
from tlu.methods.delta import Delta, attention_from_increases, feature_map_distance
from tlu.methods.facts import RunFacts
from tlu.methods.supervised import Supervised
from tlu.models import build_model
from tlu.train import mesh as mesh_lib
from tlu.train.state import TrainState

LAYERS = ('backbone/conv0', 'backbone/fc')


def nchw(fm):
  """Our (B, H, W, C) or (B, C) map -> torch's (B, C, H, W)."""
  fm = np.asarray(fm, np.float64)
  return fm[:, :, None, None] if fm.ndim == 2 else fm.transpose(0, 3, 1, 2)


def tllib_attention_behavioral(source, target, attention):
  """AttentionBehavioralRegularization.forward over zipped layers."""
  output = 0.0
  for fm_src, fm_tgt, att in zip(source, target, attention):
    fm_src, fm_tgt = nchw(fm_src), nchw(fm_tgt)
    b, c, h, w = fm_src.shape
    distance = np.linalg.norm(fm_tgt.reshape(b, c, h * w) - fm_src.reshape(b, c, h * w), 2, 2)
    output += 0.5 * np.sum(c * np.asarray(att) * distance ** 2 / (h * w))
  return output


def tllib_behavioral(source, target):
  return sum(0.5 * np.linalg.norm(nchw(t) - nchw(s)) ** 2 for s, t in zip(source, target))


def method(cls=Delta, **overrides):
  config = ml_collections.ConfigDict({**Delta.example_config(), 'layers': LAYERS, **overrides})
  model = build_model({'name': 'cnn', 'widths': (4,), 'features': 6}, cls.heads(config, 3))
  return cls(config, model, RunFacts(num_steps=10, batch_size=4, epoch_steps=1,
                                     num_examples=4)), config


def images(n, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 1), dtype=np.uint8)


def test_penalty_is_tllibs_and_its_gradient_is_by_hand():
  rng = np.random.default_rng(0)
  shapes = {'a': (3, 4, 5, 6), 'b': (3, 7)}
  t = {k: jnp.asarray(rng.normal(size=s), jnp.float32) for k, s in shapes.items()}
  s = {k: jnp.asarray(rng.normal(size=v), jnp.float32) for k, v in shapes.items()}
  att = {k: jnp.asarray(rng.dirichlet(np.ones(v[-1])), jnp.float32) for k, v in shapes.items()}
  np.testing.assert_allclose(float(feature_map_distance(t, s, att)),
                             tllib_attention_behavioral(s.values(), t.values(), att.values()),
                             rtol=1e-5)
  np.testing.assert_allclose(float(feature_map_distance(t, s)),
                             tllib_behavioral(s.values(), t.values()), rtol=1e-5)
  # d/dFM_t = C * W_c * (FM_t - FM_s) / HW; nothing flows to the source maps.
  g_t, g_s = jax.grad(feature_map_distance, argnums=(0, 1))(t, s, att)
  np.testing.assert_allclose(g_t['a'], 6 * att['a'] * (t['a'] - s['a']) / 20, rtol=1e-5)
  np.testing.assert_allclose(g_t['b'], 7 * att['b'] * (t['b'] - s['b']), rtol=1e-5)
  assert all(float(jnp.abs(g).max()) == 0 for g in g_s.values())


def tllib_channel_attention(model, variables, data, labels, batch_size, limit):
  """calculate_channel_attention's measuring loop (after its classifier training) in numpy
  over our model's forward: zero weight[j] (our kernel[..., j]), running mean of the loss
  increase over the first `limit` batches, standardise, softmax(w / 5)."""
  def ce(params, x, y):
    logits = np.asarray(model.apply({**variables, 'params': params}, x, heads=('head',))['head'],
                        np.float64)
    logp = logits - logits.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    return -np.mean(logp[np.arange(len(y)), y])

  params = jax.device_get(variables['params'])
  weights = {name: [0.0] * params['backbone'][name.split('/')[1]]['kernel'].shape[-1]
             for name in LAYERS}
  for i in range(min(-(-len(data) // batch_size), limit)):
    x = data[i * batch_size:(i + 1) * batch_size].astype(np.float32) / 255
    y = labels[i * batch_size:(i + 1) * batch_size]
    loss_0 = ce(params, x, y)
    for name, channel_weights in weights.items():
      module = params['backbone'][name.split('/')[1]]
      for j in range(len(channel_weights)):
        tmp = np.array(module['kernel'])
        module['kernel'] = tmp.copy()
        module['kernel'][..., j] = 0.0
        difference = ce(params, x, y) - loss_0
        channel_weights[j] = 1.0 * (i * channel_weights[j] + difference) / (i + 1)
        module['kernel'] = tmp
  out = {}
  for name, weight in weights.items():
    weight = np.array(weight)
    weight = (weight - np.mean(weight)) / np.std(weight)
    out[name] = np.exp(weight / 5) / np.sum(np.exp(weight / 5))
  return out, weights


class Source:
  def __init__(self, x, y):
    self.x, self.y = x, y

  def __len__(self):
    return len(self.x)

  def __getitem__(self, i):
    return {'image': self.x[i], 'label': self.y[i]}


def start(m):
  variables = m.model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  return variables, TrainState.create(variables, optax.sgd(0.1), 0,
                                      m.init_extra(variables, jax.random.key(1)))


def test_channel_attention_is_tllibs():
  m, _ = method(attention_batches=2)
  variables, state = start(m)
  x, y = images(10, 1), np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
  host = types.SimpleNamespace(splits={'train': Source(x, y)}, batch_size=4,
                               mesh=mesh_lib.make_mesh(jax.devices()[:1]))
  assert np.allclose(state.extra['attention']['backbone']['conv0'], 1 / 4)   # before
  new, _ = m.host_update(state, host)
  want, _ = tllib_channel_attention(m.model, variables, x, y, 4, limit=2)
  # The loss increases themselves (standardising hides a shift or a scale of them).
  _, raw = tllib_channel_attention(m.model, variables, x, y, 4, limit=1)
  for name in LAYERS:
    np.testing.assert_allclose(m.channel_increases(variables, x[:4] / 255, y[:4], name),
                               raw[name], rtol=1e-3, atol=1e-6, err_msg=name)
  for name in LAYERS:
    got = new.extra['attention']['backbone'][name.split('/')[1]]
    np.testing.assert_allclose(got, want[name], rtol=1e-4, atol=1e-6, err_msg=name)
    assert np.ptp(got) > 1e-3, name   # not the uniform start: the test sees a skipped update
  # Three batches would average another batch in (TLlib's attention_iteration_limit).
  other, _ = tllib_channel_attention(m.model, variables, x, y, 4, limit=3)
  assert not np.allclose(other['backbone/fc'], want['backbone/fc'], rtol=1e-3)
  assert m.host_update(state, host)[0].extra['attention'] is not None
  plain, _ = method(attention=False)
  assert plain.host_update(start(plain)[1], host)[0].extra.get('attention') is None


def test_a_flat_layer_gets_uniform_attention_not_nan():
  # TLlib divides by np.std = 0 here (dead channels all give the same increase).
  np.testing.assert_allclose(attention_from_increases(np.full(4, 0.2)), np.full(4, 0.25))
  w = np.array([0.0, 1.0, 3.0])
  z = (w - w.mean()) / w.std()
  np.testing.assert_allclose(attention_from_increases(w), np.exp(z / 5) / np.exp(z / 5).sum(),
                             rtol=1e-6)


def maps_of(model, variables, x, train):
  """{layer: output} straight from Flax's capture_intermediates (every __call__)."""
  _, state = model.apply(variables, x, train=train, heads=('head',),
                         mutable=['batch_stats', 'intermediates'], capture_intermediates=True)
  inter = state['intermediates']['backbone']
  return [np.asarray(inter[name.split('/')[1]]['__call__'][0]) for name in LAYERS]


@pytest.mark.parametrize('attention', [True, False])
def test_loss_is_cross_entropy_plus_the_feature_maps_plus_head_l2(attention):
  m, _ = method(alpha=0.3, beta=0.02, attention=attention)
  variables, state0 = start(m)
  att = {'backbone': {'conv0': jnp.array([0.1, 0.2, 0.3, 0.4]),
                      'fc': jnp.linspace(0.05, 0.3, 6)}}
  extra = {**state0.extra, **({'attention': att} if attention else {})}
  moved = jax.tree.map(lambda w: w + 0.1 * jnp.sin(jnp.arange(w.size).reshape(w.shape)),
                       variables['params'])
  batch = {'image': images(4), 'label': np.array([0, 1, 2, 0])}
  stats = jax.tree.map(lambda s: s + 0.3, variables['batch_stats'])   # moved statistics
  state = {'batch_stats': stats, 'step': jnp.zeros((), jnp.int32), 'extra': extra}
  loss, aux = m.objective(moved, state, batch, jax.random.key(2))
  ce, _ = method(Supervised)[0].objective(moved, state, batch, jax.random.key(2))
  x = batch['image'].astype(np.float32) / 255
  target = maps_of(m.model, {'params': moved, 'batch_stats': stats}, x, m.mode)
  source = maps_of(m.model, variables, x, False)   # the source weights and statistics, eval
  if attention:
    omega = tllib_attention_behavioral(source, target, [att['backbone']['conv0'],
                                                        att['backbone']['fc']])
  else:
    omega = tllib_behavioral(source, target)
  head = sum(np.sum(np.asarray(w, np.float64) ** 2) for w in jax.tree.leaves(moved['head']))
  assert omega > 1e-3
  np.testing.assert_allclose(float(loss), float(ce) + 0.3 * omega + 0.02 / 2 * head, rtol=1e-5)
  np.testing.assert_allclose(float(aux.metrics['delta_feature_distance']), omega, rtol=1e-5)
  assert set(aux.outputs) == {'features', 'head'}
  grads = jax.grad(lambda p: m.loss_fn(p, state, batch, jax.random.key(0)).loss)(moved)
  assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


@pytest.mark.parametrize('overrides,message', [
    ({'layers': 'backbone/.*'}, r"method.layers='backbone/.\*' must be a tuple of path regexes"),
    ({'shared': ()}, 'method.shared=.* must be a tuple of path regexes'),
    ({'layers': ('backbone/(',)}, 'is not a regex'),
])
def test_check(overrides, message):
  with pytest.raises(ValueError, match=message):
    Delta.check(ml_collections.ConfigDict({**Delta.example_config(), **overrides}))


@pytest.mark.parametrize('overrides,message', [
    ({'alpha': -1.0}, 'method.alpha=-1.0: must be a finite number >= 0'),
    ({'beta': -0.5}, 'method.beta=-0.5: must be a finite number >= 0'),
    ({'attention_batches': 0}, 'method.attention_batches=0: must be an integer >= 1'),
    ({'attention_batches': 2.5}, 'method.attention_batches=2.5: must be an integer >= 1'),
    ({'attention': 1}, 'method.attention=1: must be True or False'),
])
def test_ranges(overrides, message):
  config = ml_collections.ConfigDict({**Delta.example_config(), **overrides})
  with pytest.raises(checks.RangeError, match=message):
    checks.check_values(config, Delta.ranges, 'method.')


@pytest.mark.parametrize('overrides,message', [
    ({'layers': ('trunk/.*',)}, 'names no module with a kernel'),
    ({'shared': ('trunk/.*',)}, 'names no parameter'),
    ({'shared': ('backbone/conv0/.*',)}, r"\['backbone/fc'\] are not in method.shared"),
])
def test_layers_and_shared_that_do_not_fit_the_model_are_refused(overrides, message):
  m, _ = method(**overrides)
  variables = m.model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  with pytest.raises(ValueError, match=message):
    m.init_extra(variables, jax.random.key(1))


def test_a_finetune_cell_trains_with_delta_from_the_source(tmp_path):
  # The transfer stage's fine-tuning strategy with method 'delta' (strategies.fit): the
  # attention is measured before step 1, the source is the transplanted backbone.
  from configs import digits_transfer  # pylint: disable=import-outside-toplevel
  from tlu.train import task  # pylint: disable=import-outside-toplevel
  from tlu.transfer import strategies  # pylint: disable=import-outside-toplevel
  config = digits_transfer.get_config('finetune')
  config.method = ml_collections.ConfigDict({**Delta.example_config(), 'name': 'delta',
                                             'alpha': 0.1, 'layers': LAYERS})
  config.update(steps=3, batch_size=4, eval_batch_size=4)
  model_cfg = {'name': 'cnn', 'widths': (4,), 'features': 6}
  source = build_model(model_cfg, Delta.heads(config.method, 5)).init(
      jax.random.key(7), jnp.zeros((1, 8, 8, 1)))
  y = np.array([0, 1, 2] * 4)
  splits = task.Splits(train=Source(images(12, 3), y), test=Source(images(12, 4), y),
                       num_classes=3, image_shape=(8, 8, 1))
  trainer = task.Trainer(mesh_lib.make_mesh(jax.devices()[:1]))
  summary, state = strategies.fit(trainer, config, 'finetune', tmp_path / 'cell', splits,
                                  model=model_cfg, source=source, seed=0)
  assert summary['steps'] == 3 and np.isfinite(summary['train_delta_feature_distance'])
  assert summary['train_delta_feature_distance'] > 0
  start = jax.device_get(state.extra['source'])
  np.testing.assert_array_equal(start['backbone']['fc']['kernel'],
                                source['params']['backbone']['fc']['kernel'])
  for name in LAYERS:
    att = np.asarray(state.extra['attention']['backbone'][name.split('/')[1]])
    assert abs(att.sum() - 1) < 1e-5 and np.ptp(att) > 1e-4, name   # measured, not uniform
