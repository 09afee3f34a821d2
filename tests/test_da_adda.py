"""ADDA against numpy transcriptions of TLlib (tllib/alignment/dann.py's and adda.py's
DomainAdversarialLoss, DomainDiscriminator, WarmStartGradientReverseLayer), one train step
of each objective against its phases replayed by hand (the frozen source encoder and the
classifier never move), its checks, and the sweep's cell: source weights, paired batches."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

import da_reference as ref
import methods_check
from configs import adapt_methods, digits_to_digits_m
from tlu import checks
from tlu.adapt import cells
from tlu.methods import adda as adda_lib
from tlu.methods.phases import PhaseOptimizers
from tlu.train import mesh as mesh_lib, task
from tlu.train.state import TrainState
from tlu.train.step import make_train_step

ADDA = adda_lib.ADDA
LR, STEP = 0.5, 4   # a step where the reversal's lambda is well above 0


def test_losses_and_reversal_schedule_match_tllib():
  rng = np.random.default_rng(0)
  d_s, d_t = rng.normal(size=(6, 1)) * 4, rng.normal(size=(5, 1)) * 4
  d_s[0], d_t[0] = 0.0, 0.0   # ties: TLlib's accuracy counts sigmoid >= 0.5 as source
  as32 = lambda x: jnp.asarray(x, jnp.float32)
  loss, accuracy = adda_lib.discriminator_loss(as32(d_s), as32(d_t))
  want_loss, want_accuracy = ref.dann_adversarial_loss(ref.sigmoid(d_s), ref.sigmoid(d_t))
  np.testing.assert_allclose(float(loss), want_loss, rtol=1e-5)
  np.testing.assert_allclose(100 * float(accuracy), want_accuracy, rtol=1e-6)
  np.testing.assert_allclose(float(adda_lib.target_encoder_loss(as32(d_t))),
                             ref.adda_adversarial_loss(ref.sigmoid(d_t), 'source'), rtol=1e-5)
  # TLlib's warm start (alpha 1, lo 0, hi 2, 1000 iterations) is gamma = num_steps / 1000
  for i in (0, 1, 250, 999, 3000, 5000):
    np.testing.assert_allclose(float(adda_lib.grl_lambda(i, 5000, 2.0, 5.0)),
                               ref.warm_start_coeff(i, 1.0, 0.0, 2.0, 1000), rtol=1e-5,
                               atol=1e-7)


def _setup(objective):
  """(method, variables of the source model, the current variables: a target encoder whose
  parameters and BatchNorm statistics moved away from it, the frozen copy in the method
  state, a paired batch)."""
  method, variables = ref.make_method(ADDA, objective=objective)
  variables = jax.tree.map(np.array, variables)
  extra = jax.tree.map(np.array, method.init_extra(variables, None))
  noise = np.random.default_rng(1)
  move = lambda tree, scale: jax.tree.map(
      lambda x: x + scale * np.abs(noise.normal(size=x.shape)).astype(x.dtype), tree)
  params = {**variables['params'], 'backbone': move(variables['params']['backbone'], 0.3)}
  stats = {**variables['batch_stats'], 'backbone': move(variables['batch_stats']['backbone'],
                                                        0.5)}
  current = {'params': params, 'batch_stats': stats}
  return method, variables, current, extra, ref.paired_batch(4)


def _reference_loss(method, variables, current, batch, objective):
  """TLlib's losses from model.apply directly: the source features of the source model in
  eval mode, the target features of the current model in training mode, D in numpy."""
  x = lambda key: jnp.asarray(batch[key], jnp.float32) / 255
  f_s = method.model.apply(variables, x('image'), train=False)['features']
  out_t, new = method.model.apply(current, x('target_image'), train=True,
                                  mutable=['batch_stats'])
  d = current['params']['domain_head']
  hidden = [(d[f'dense{i}']['kernel'], d[f'dense{i}']['bias'], d[f'bn{i}']['scale'],
             d[f'bn{i}']['bias']) for i in range(2)]
  last = (d['dense2']['kernel'], d['dense2']['bias'])
  f = np.concatenate([np.asarray(f_s, np.float64), np.asarray(out_t['features'], np.float64)])
  probs = ref.domain_discriminator(f, hidden, last)
  n = len(batch['image'])
  if objective == 'target':
    return ref.adda_adversarial_loss(probs[n:], 'source'), new['batch_stats']
  return ref.dann_adversarial_loss(probs[:n], probs[n:])[0], new['batch_stats']


@pytest.mark.parametrize('loss_name', ['grl_loss', 'discriminator_loss', 'target_loss'])
def test_method_losses_are_tllibs_on_the_model_outputs(loss_name):
  method, variables, current, extra, batch = _setup('grl')
  state = {'batch_stats': current['batch_stats'], 'step': jnp.int32(STEP), 'extra': extra}
  out = jax.jit(getattr(method, loss_name))(current['params'], state, batch, None)
  want, stats = _reference_loss(method, variables, current, batch, loss_name.split('_')[0])
  np.testing.assert_allclose(float(out.loss), want, rtol=1e-5)
  # M_t's statistics are the target pass's; D's moved (its BatchNorm ran in training mode)
  for path, value in ref.flat(stats['backbone']).items():
    np.testing.assert_allclose(ref.flat(out.batch_stats['backbone'])[path], value, rtol=1e-5,
                               atol=1e-7)
  before, after = (ref.flat(s['domain_head']) for s in (current['batch_stats'],
                                                         out.batch_stats))
  assert all(not np.allclose(after[p], before[p]) for p in before)
  assert set(out.metrics) >= {'domain_loss', 'domain_accuracy'}


@pytest.mark.parametrize('objective', ['grl', 'inverted'])
def test_one_step_is_its_phases_replayed_by_hand(objective):
  """SGD: 'grl' moves D by -LR grad and M_t by +LR lambda grad of L_advD / 2 (the reversal);
  'inverted' moves D by L_advD / 2, then M_t by L_advM at the new D. Neither moves the
  classifier or the frozen source encoder, bit for bit."""
  method, _, current, extra, batch = _setup(objective)
  params = current['params']
  mesh = mesh_lib.make_mesh(jax.devices()[:1])
  tx = PhaseOptimizers(method.phases, lambda p: optax.sgd(LR), params)
  state = TrainState.create(current, tx, 0, extra)
  state = state.replace(step=jnp.int32(STEP))
  new, metrics = make_train_step(method, tx, mesh)(jax.tree.map(jnp.array, state), batch)
  new = jax.device_get(new)

  def grads(loss_name, params, stats):
    model_state = {'batch_stats': stats, 'step': jnp.int32(STEP), 'extra': extra}
    fn = lambda p: (lambda o: (o.loss, o))(getattr(method, loss_name)(p, model_state, batch,
                                                                       None))
    (_, out), g = jax.jit(jax.value_and_grad(fn, has_aux=True))(params)
    return g, out.batch_stats

  sgd = lambda p, g, scale: jax.tree.map(lambda x, y: x - scale * LR * np.asarray(y), p, g)
  g, stats = grads('discriminator_loss', params, current['batch_stats'])
  want = {**params, 'domain_head': sgd(params['domain_head'], g['domain_head'], 1.0)}
  if objective == 'grl':
    lam = float(adda_lib.grl_lambda(STEP, method.facts.num_steps, 2.0, 10.0))
    assert lam > 0.5 and float(metrics['adapt_lambda']) == pytest.approx(lam)
    want['backbone'] = sgd(params['backbone'], g['backbone'], -lam)
  else:
    g, stats = grads('target_loss', want, stats)
    want['backbone'] = sgd(params['backbone'], g['backbone'], 1.0)
  for name in ('backbone', 'domain_head'):   # each moved by more than the tolerance
    for path, value in ref.flat(want[name]).items():
      np.testing.assert_allclose(ref.flat(new.params[name])[path], value, rtol=1e-4,
                                 atol=1e-5, err_msg=name + path)
    assert max(np.max(np.abs(x - y)) for x, y in zip(jax.tree.leaves(want[name]),
                                                     jax.tree.leaves(params[name]))) > 1e-3
  for path, value in ref.flat(stats).items():
    np.testing.assert_allclose(ref.flat(new.batch_stats)[path], value, rtol=1e-4, atol=1e-6)
  for path, value in ref.flat(params['head']).items():
    np.testing.assert_array_equal(ref.flat(new.params['head'])[path], value)
  for path, value in ref.flat(extra).items():
    np.testing.assert_array_equal(ref.flat(new.extra)[path], value)
  assert all('head' not in p.subtrees for p in method.phases)


def _config(**values):
  return ml_collections.ConfigDict({**ADDA.example_config(), **values})


@pytest.mark.parametrize('key, bad, message', [
    ('domain_head', (8, 0, 1), 'method.domain_head=(8, 0, 1): must be a tuple of widths >= 1'),
    ('grl_max', -1.0, 'method.grl_max=-1.0: must be a finite number >= 0'),
    ('gamma', -0.5, 'method.gamma=-0.5: must be a finite number >= 0'),
    ('domain_head', (8, 2), 'method.domain_head=(8, 2): widths ending in 1'),
    ('domain_head', (), 'method.domain_head=(): must be a tuple of widths >= 1'),
    ('objective', 'gan', "method.objective='gan'; use one of ('grl', 'inverted')"),
])
def test_bad_values_are_refused_in_one_line(key, bad, message):
  config = _config()
  checks.check_values(config, ADDA.ranges, 'method.')
  ADDA.check(config)   # the example passes both
  config[key] = bad
  with pytest.raises(ValueError) as e:
    checks.check_values(config, ADDA.ranges, 'method.')
    ADDA.check(config)
  assert str(e.value).startswith(message) and '\n' not in str(e.value), str(e.value)


def test_the_sweep_starts_adda_from_the_source_run_on_paired_batches(tmp_path):
  config = digits_to_digits_m.get_config()
  with config.unlocked():
    config.update(adapt_methods.blocks(steps=40, batch_size=8))
    config.methods = ('adda',)
  assert cells.from_source(config, 'adda') and cells.needs_source(config)
  data = cells.AdaptData.__new__(cells.AdaptData)   # without opening datasets
  full = methods_check.splits()
  data.source_splits = task.Splits(train=full.train, test=full.test, num_classes=3,
                                   image_shape=(8, 8, 1))
  data.oracle_splits = task.Splits(train=full.target, test=full.test, num_classes=3,
                                   image_shape=(8, 8, 1))
  splits = data.splits_for(ADDA)
  assert splits.train is full.train and splits.target is full.target

  # The cell's init (cells.source_init's role): the source run's weights replace the fresh
  # ones; the frozen copy is taken from them, and the classifier stays theirs.
  source = {}

  def init(variables):
    source.update(jax.tree.map(lambda x: np.asarray(x) + 0.1, variables))
    return jax.tree.map(jnp.asarray, source)

  cfg = methods_check.config('adda')
  trainer = task.Trainer(mesh_lib.make_mesh(jax.devices()[:1]))
  state, _, _ = trainer.run(cfg, str(tmp_path / 'adda'), splits, init=init)
  state = jax.device_get(state)
  assert int(state.step) == 4
  for tree, want in ((state.extra['source']['params'], source['params']['backbone']),
                     (state.extra['source']['batch_stats'], source['batch_stats']['backbone']),
                     (state.params['head'], source['params']['head'])):
    for path, value in ref.flat(want).items():
      np.testing.assert_array_equal(ref.flat(tree)[path], value)
  moved = ref.flat(state.params['backbone'])
  assert any(not np.allclose(v, moved[p])
             for p, v in ref.flat(source['params']['backbone']).items())
