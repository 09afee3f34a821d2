"""MCD against a numpy transcription of TLlib's mcd.py (losses of steps A, B, C), and one
train step against the three steps replayed by hand: each phase moves only its subtrees."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

import da_reference as ref
from tlu.methods import mcd as mcd_lib
from tlu.methods.phases import PhaseOptimizers
from tlu.train import mesh as mesh_lib
from tlu.train.state import TrainState
from tlu.train.step import make_train_step
from method_block import check_block

HEADS = ('head', 'head2')
W, W_ENT, LR = 0.3, 0.03, 0.05   # TLlib's digit trade-offs


def test_discrepancy_and_entropy_match_tllib():
  rng = np.random.default_rng(0)
  y1_s, y2_s, y1_t, y2_t = (rng.normal(size=(6, 4)) * 3 for _ in range(4))
  y1_t[:, 0] = 50.0   # a class no target example predicts for F1: the 1e-6 keeps it finite
  labels = rng.integers(0, 4, 6)
  p1, p2 = ref.softmax(y1_t), ref.softmax(y2_t)
  as32 = lambda x: jnp.asarray(x, jnp.float32)
  np.testing.assert_allclose(float(mcd_lib.classifier_discrepancy(as32(p1), as32(p2))),
                             ref.classifier_discrepancy(p1, p2), rtol=1e-5)
  for p in (p1, p2):
    np.testing.assert_allclose(float(mcd_lib.class_entropy(as32(p))), ref.mcd_entropy(p),
                               rtol=1e-5)
  want_a, _, _ = ref.mcd_losses(y1_s, y2_s, labels, y1_t, y2_t, W, W_ENT)
  got = mcd_lib.source_objective(as32(y1_s), as32(y2_s), labels, as32(p1), as32(p2), W_ENT)
  np.testing.assert_allclose(float(got), want_a, rtol=1e-5)


@pytest.fixture(scope='module')
def setup():
  method, variables = ref.make_method(mcd_lib.MCD, domain_weight=W, entropy_weight=W_ENT,
                                      num_k=2)
  return method, variables, ref.paired_batch(3)


@pytest.mark.parametrize('batch_norm', ['joint', 'per_domain'])
def test_phase_losses_are_tllibs_on_the_model_outputs(batch_norm):
  method, variables = ref.make_method(mcd_lib.MCD, domain_weight=W, entropy_weight=W_ENT,
                                      batch_norm=batch_norm)
  batch = ref.paired_batch(5)
  out_s, out_t, stats = ref.paired_outputs(method, variables, batch, heads=HEADS)
  want = ref.mcd_losses(out_s['head'], out_s['head2'], batch['label'], out_t['head'],
                        out_t['head2'], W, W_ENT)
  state = ref.model_state(variables, 0)
  for name, value in zip(('source_loss', 'maximise_loss', 'minimise_loss'), want):
    out = jax.jit(getattr(method, name))(variables['params'], state, batch, None)
    np.testing.assert_allclose(float(out.loss), value, rtol=1e-5, err_msg=name)
    for path, got in ref.flat(out.batch_stats).items():
      np.testing.assert_allclose(got, ref.flat(stats)[path], rtol=1e-5, atol=1e-6)


def test_phases_are_source_maximise_and_num_k_minimise_steps(setup):
  method = setup[0]
  assert [(p.name, p.subtrees) for p in method.phases] == [
      ('source', ('backbone', 'head', 'head2')), ('maximise', HEADS),
      ('minimise', ('backbone',)), ('minimise2', ('backbone',))]
  with pytest.raises(ValueError, match='method.num_k=0'):
    check_block(mcd_lib.MCD, ml_collections.ConfigDict({**mcd_lib.MCD.example_config(), 'num_k': 0}))


def test_one_step_is_tllibs_steps_a_b_and_c_each_over_its_parameters(setup):
  """SGD without momentum: the step's result against A (all), B (F1, F2), C (G) x num_k
  replayed here, each a gradient of its whole-model loss applied to its part alone."""
  method, variables, batch = setup
  variables = jax.tree.map(np.array, variables)   # the step donates (deletes) its state
  mesh = mesh_lib.make_mesh(jax.devices()[:1])
  tx = PhaseOptimizers(method.phases, lambda p: optax.sgd(LR), variables['params'])
  state = TrainState.create(variables, tx, 0)
  new, metrics = make_train_step(method, tx, mesh)(state, batch)
  new = jax.device_get(new)

  params = variables['params']
  stats = variables['batch_stats']
  losses = []

  def update(loss_name, parts):
    nonlocal params, stats
    fn = lambda p: (lambda o: (o.loss, o))(getattr(method, loss_name)(
        p, {'batch_stats': stats, 'step': jnp.int32(0), 'extra': {}}, batch, None))
    (loss, out), grads = jax.value_and_grad(fn, has_aux=True)(params)
    params = {k: jax.tree.map(lambda x, g: x - LR * np.asarray(g), v, grads[k])
              if k in parts else v for k, v in params.items()}
    stats = out.batch_stats
    losses.append(float(loss))

  update('source_loss', ('backbone', 'head', 'head2'))
  after_a = params
  update('maximise_loss', HEADS)
  for _ in range(2):
    update('minimise_loss', ('backbone',))
  for name in params:
    for path, want in ref.flat(params[name]).items():
      np.testing.assert_allclose(ref.flat(new.params[name])[path], want, rtol=1e-4, atol=1e-6,
                                 err_msg=name + path)
  for path, want in ref.flat(stats).items():
    np.testing.assert_allclose(ref.flat(new.batch_stats)[path], want, rtol=1e-4, atol=1e-6)
  # the step's B moved the heads past A's and its C moved G past A's (by more than the
  # tolerance above: a phase over the wrong parts fails the comparison)
  moved = lambda a, b: max(np.max(np.abs(x - y)) for x, y in
                           zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  for name in ('backbone',) + HEADS:
    assert moved(after_a[name], new.params[name]) > 1e-4, name
  np.testing.assert_allclose(
      [metrics[k] for k in ('source_loss', 'maximise_loss', 'minimise_loss', 'minimise2_loss')],
      losses, rtol=1e-5)
  assert float(metrics['loss']) == float(metrics['source_loss'])
