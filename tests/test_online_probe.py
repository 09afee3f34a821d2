"""The online linear probe (solo-learn's protocol): a linear classifier trained during
pretraining on stop-gradient backbone features, its loss added to the method's.

Specification: with the probe on, every gradient but the probe's is the method's own
(every SSL method), the backbone trains as without it, its logged loss is the CE of
features @ W + b, and its reported test accuracy is the numpy argmax of features @ W + b
of the final state against the test labels.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import methods_check
from tlu.methods.base import PROBE
from tlu.train import mesh as mesh_lib, task

# The default suite checks SimCLR (the backbone test below trains BYOL with the probe);
# every other SSL method under `-m slow`.
FAST = ('simclr',)
SSL = [n if n in FAST else pytest.param(n, marks=pytest.mark.slow)
       for n in ('simclr', 'mocov3', 'byol', 'simsiam', 'barlow_twins', 'vicreg', 'dino', 'swav',
                 'supcon')]


PROBE_EVAL = {PROBE: dict(type='classification', head=PROBE, prefix='online_probe_')}


def _config(name, online_probe):
  cfg = methods_check.config(name)
  cfg.online_probe = online_probe
  cfg.evals = PROBE_EVAL if online_probe else {}
  return cfg


def _inputs(method, model, data):
  variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  model_state = {'batch_stats': variables['batch_stats'], 'step': jnp.int32(0),
                 'extra': method.init_extra(variables, jax.random.key(1))}
  batch = {'image': np.stack([data.train[i]['image'] for i in range(8)]),
           'label': np.asarray([data.train[i]['label'] for i in range(8)], np.int32)}
  return variables['params'], model_state, batch


@pytest.mark.parametrize('name', SSL)
def test_the_probe_leaves_every_other_gradient_as_it_was(name):
  data = methods_check.splits()
  on, model, _ = task.build_method(_config(name, True), data)
  off, _, _ = task.build_method(_config(name, False), data, model=model)   # same parameters
  params, model_state, batch = _inputs(on, model, data)
  rng = jax.random.key(2)
  # jit: eager differentiation compiles one program per op.
  (_, aux), g_on = jax.jit(jax.value_and_grad(on.objective, has_aux=True))(
      params, model_state, batch, rng)
  g_off = jax.jit(jax.grad(off.objective, has_aux=True))(params, model_state, batch, rng)[0]
  for key in params:
    if key != PROBE:
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6),
                   g_on[key], g_off[key])
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(g_off[PROBE]))
  assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(g_on[PROBE]))
  # The probe's loss: the CE of features @ W + b over every view the method returned.
  features = np.asarray(aux.outputs['features'], np.float64)
  w, b = (np.asarray(params[PROBE][k], np.float64) for k in ('kernel', 'bias'))
  logits = features @ w + b
  labels = np.tile(batch['label'], len(features) // len(batch['label']))
  log_p = logits - logits.max(1, keepdims=True)
  log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
  np.testing.assert_allclose(aux.metrics['online_probe_loss'],
                             -log_p[np.arange(len(labels)), labels].mean(), rtol=1e-5)


def _train(online_probe, tmp_path):
  data = methods_check.splits()
  trainer = task.Trainer(mesh_lib.make_mesh(jax.devices()[:1]))
  cfg = _config('byol', online_probe)
  state, metrics, _ = trainer.run(cfg, str(tmp_path / f'probe_{online_probe}'), data)
  return jax.device_get(state), metrics, trainer.build(cfg, data)[1], data


def test_the_backbone_trains_as_without_the_probe_and_its_accuracy_is_reported(tmp_path):
  state, metrics, model, data = _train(True, tmp_path)
  plain, plain_metrics, _, _ = _train(False, tmp_path)
  assert PROBE not in plain.params and 'online_probe_accuracy' not in plain_metrics
  for key in plain.params:
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6),
                 state.params[key], plain.params[key])
  # Independently: the final probe on inference-mode features of the test split.
  images = np.stack([data.test[i]['image'] for i in range(len(data.test))])
  labels = np.asarray([data.test[i]['label'] for i in range(len(data.test))])
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False)['features'])
  features = np.asarray(apply(state.variables, images.astype(np.float32) / 255.0), np.float64)
  logits = features @ np.asarray(state.params[PROBE]['kernel']) + state.params[PROBE]['bias']
  assert metrics['online_probe_accuracy'] == pytest.approx(np.mean(logits.argmax(1) == labels))


def test_a_probe_that_cannot_see_labels_or_is_scored_without_its_head_is_refused():
  cfg = _config('dann', True)
  with pytest.raises(ValueError, match="online_probe=True: method dann reads 'paired'"):
    task.check_task(cfg)
  cfg = _config('simclr', False)
  cfg.evals = PROBE_EVAL
  with pytest.raises(ValueError, match="evals.online_probe reads the head 'online_probe', "
                                       'which the model does not have'):
    task.check_task(cfg, methods_check.splits())
