"""Each semi-supervised method's loss_fn on a hand-made batch and a tiny model, against the
numpy transcription of USB's train_step (tests/usb_reference.py) on the same logits; the
method state over two steps; the 'labelled_unlabelled' stream; config checks."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import usb_reference as usb
from tlu import methods
from tlu.data.loader import labelled_unlabelled_iterator
from tlu.methods.facts import RunFacts
from tlu.models import build_model
from tlu.semisup.views import make_view
from tlu.train.state import TrainState
from method_block import check_block

K, B, MU, U, STEPS = 3, 4, 2, 16, 10


@pytest.fixture(scope='module')
def model():
  return build_model({'name': 'mlp', 'widths': (16,), 'features': 8},
                     methods.get('fixmatch').heads(None, K))


@pytest.fixture(scope='module')
def variables(model):
  v = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  # A larger head spreads the confidences over (1/K, 1), so thresholds cut through them.
  head = jax.tree.map(lambda x: 8.0 * x, v['params']['head'])
  return {**v, 'params': {**v['params'], 'head': head}}


def make_batch(seed, index=None):
  rng = np.random.default_rng(seed)
  index = rng.permutation(U)[:MU * B] if index is None else index
  return {'image': rng.integers(0, 256, (B, 8, 8, 1), dtype=np.uint8),
          'label': rng.integers(0, K, B).astype(np.int32),
          'unlabelled_image': rng.integers(0, 256, (MU * B, 8, 8, 1), dtype=np.uint8),
          'unlabelled_index': np.asarray(index, np.int32)}


# Cheap views (pixel noise of two strengths): the tests check the losses, not the views.
VIEWS = {'weak': {'noise_prob': 1.0, 'noise_std': 0.05},
         'strong': {'noise_prob': 1.0, 'noise_std': 0.3}}


def build(model, name, **overrides):
  cls = methods.get(name)
  config = ml_collections.ConfigDict({**cls.example_config(), **VIEWS, **overrides})
  check_block(cls, config)
  return cls(config, model, RunFacts(num_steps=STEPS, batch_size=B, epoch_steps=1,
                                     num_examples=U, num_unlabelled=U))


def forward(variables, images):
  """Training-mode logits (float64) and BatchNorm statistics of one pass."""
  out, updates = variables['model'].apply(
      {'params': variables['params'], 'batch_stats': variables['batch_stats']}, images,
      train=True, heads=('head',), mutable=['batch_stats'])
  return np.asarray(out['head'], np.float64), updates['batch_stats']


def between(values):
  """A threshold strictly between the middle two of `values` (no value sits on it)."""
  v = np.sort(values)
  return float((v[len(v) // 2 - 1] + v[len(v) // 2]) / 2)


def run(method, variables, batch, rng, extra=None, step=0):
  state = {'batch_stats': variables['batch_stats'], 'step': jnp.int32(step),
           'extra': method.init_extra(variables, None) if extra is None else extra}
  return jax.jit(method.loss_fn)(variables['params'], state, batch, rng)


def usb_logits(method, variables, batch, rng):
  """USB's use_cat forward: [x_lb; x_ulb_w; x_ulb_s] in one pass."""
  x, u_w, u_s = method.weak_strong(batch, rng)
  logits, stats = forward(variables, jnp.concatenate([x, u_w, u_s]))
  return logits[:B], logits[B:B + MU * B], logits[B + MU * B:], stats


def assert_tree_close(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope='module')
def v(model, variables):
  return {**variables, 'model': model}


def test_fixmatch_loss_is_usbs(model, v):
  batch, rng = make_batch(1), jax.random.key(1)
  probe = build(model, 'fixmatch')
  lb, w, s, stats = usb_logits(probe, v, batch, rng)
  tau = between(usb.softmax(w).max(-1))
  out = run(build(model, 'fixmatch', threshold=tau), v, batch, rng)
  mask = usb.fixed_threshold_mask(usb.softmax(w), tau)
  sup = usb.ce_loss(lb, batch['label']).mean()
  unsup = usb.consistency_loss(s, usb.softmax(w).argmax(-1), 'ce', mask)
  np.testing.assert_allclose(out.loss, sup + 1.0 * unsup, rtol=1e-5)
  np.testing.assert_allclose(out.metrics['util_ratio'], mask.mean())
  assert 0 < mask.mean() < 1
  assert_tree_close(out.batch_stats, stats)
  assert out.outputs['features'].shape == (B, 8) and out.extra is None


def test_flexmatch_loss_and_state_over_two_steps_are_usbs(model, v):
  probe = build(model, 'flexmatch')
  b1, b2 = make_batch(2, np.arange(8)), make_batch(3, np.arange(4, 12))
  r1, r2 = jax.random.key(2), jax.random.key(3)
  w1 = usb_logits(probe, v, b1, r1)[1]
  tau = between(usb.softmax(w1).max(-1))
  method = build(model, 'flexmatch', threshold=tau)
  hook = usb.FlexMatchThresholdingHook(U, K, thresh_warmup=True)
  # Start from a run in progress: most examples claimed, unevenly over the classes.
  hook.selected_label = np.array([0] * 7 + [1] * 4 + [2] * 2 + [-1] * 3)
  hook.update()
  extra = {'selected_label': jnp.asarray(hook.selected_label, jnp.int32),
           'classwise_acc': jnp.asarray(hook.classwise_acc, jnp.float32)}
  for batch, rng in ((b1, r1), (b2, r2)):
    lb, w, s, _ = usb_logits(method, v, batch, rng)
    probs = usb.softmax(w)
    mask = hook.masking(probs, batch['unlabelled_index'], tau)
    want = (usb.ce_loss(lb, batch['label']).mean()
            + usb.consistency_loss(s, probs.argmax(-1), 'ce', mask))
    out = run(method, v, batch, rng, extra)
    np.testing.assert_allclose(out.loss, want, rtol=1e-5)
    np.testing.assert_array_equal(out.extra['selected_label'], hook.selected_label)
    np.testing.assert_allclose(out.extra['classwise_acc'], hook.classwise_acc, rtol=1e-6)
    extra = out.extra
  assert 0 < mask.mean() < 1 and hook.classwise_acc.max() > 0   # step 2 thresholds bite


def test_freematch_loss_and_state_over_two_steps_are_usbs(model, v):
  method = build(model, 'freematch', ema_momentum=0.3)   # fairness_weight 0.01
  hook = usb.FreeMatchThresholingHook(K, 0.3)
  extra, masks = None, []
  for seed in (4, 5):
    batch, rng = make_batch(seed), jax.random.key(seed)
    lb, w, s, _ = usb_logits(method, v, batch, rng)
    mask = hook.masking(usb.softmax(w))
    masks.append(mask)
    ent = (usb.freematch_entropy_loss(mask, s, hook.p_model, hook.label_hist)
           if mask.sum() > 0 else 0.0)
    want = (usb.ce_loss(lb, batch['label']).mean()
            + usb.consistency_loss(s, usb.softmax(w).argmax(-1), 'ce', mask) + 0.01 * ent)
    out = run(method, v, batch, rng, extra)
    np.testing.assert_allclose(out.loss, want, rtol=1e-5)
    for key, ref in (('p_model', hook.p_model), ('label_hist', hook.label_hist),
                     ('time_p', hook.time_p)):
      np.testing.assert_allclose(out.extra[key], ref, rtol=1e-5)
    extra = out.extra
  assert any(0 < m.mean() < 1 for m in masks)


def test_softmatch_loss_and_state_over_two_steps_are_usbs(model, v):
  method = build(model, 'softmatch', ema_momentum=0.3)   # n_sigma 2, uniform alignment
  align, weigh = usb.DistAlignEMAHook(K, 0.3), usb.SoftMatchWeightingHook(K, 2, 0.3)
  extra = None
  for seed in (6, 7):
    batch, rng = make_batch(seed), jax.random.key(seed)
    lb, w, s, _ = usb_logits(method, v, batch, rng)
    weights = weigh.masking(align.dist_align(usb.softmax(w)))
    want = (usb.ce_loss(lb, batch['label']).mean()
            + usb.consistency_loss(s, usb.softmax(w).argmax(-1), 'ce', weights))
    out = run(method, v, batch, rng, extra)
    np.testing.assert_allclose(out.loss, want, rtol=1e-5)
    np.testing.assert_allclose(out.extra['p_model'], align.p_model, rtol=1e-5)
    np.testing.assert_allclose(out.extra['mu'], weigh.prob_max_mu_t, rtol=1e-5)
    np.testing.assert_allclose(out.extra['var'], weigh.prob_max_var_t, rtol=1e-5)
    extra = out.extra
  assert weights.min() < 0.99


def test_uda_loss_is_usbs_with_the_papers_sharpening(model, v):
  batch, rng = make_batch(8), jax.random.key(8)
  probe = build(model, 'uda')
  lb, w, s, _ = usb_logits(probe, v, batch, rng)
  tau, step = between(usb.softmax(w).max(-1)), 3
  out = run(build(model, 'uda', threshold=tau, tsa='linear'), v, batch, rng, step=step)
  eta = usb.uda_tsa('linear', step, STEPS, K)
  sup_mask = (usb.softmax(lb).max(-1) <= eta).astype(np.float64)
  sup = (usb.ce_loss(lb, batch['label']) * sup_mask).mean()
  mask = usb.fixed_threshold_mask(usb.softmax(w), tau)
  unsup = usb.consistency_loss(s, usb.softmax(w / 0.4), 'ce', mask)   # T = 0.4
  np.testing.assert_allclose(out.loss, sup + unsup, rtol=1e-5)
  np.testing.assert_allclose(out.metrics['tsa_ratio'], sup_mask.mean())
  assert 0 < sup_mask.mean() < 1 or 0 < mask.mean() < 1


def test_pseudolabel_loss_and_statistics_are_usbs(model, v):
  batch, rng = make_batch(9), jax.random.key(9)
  probe = build(model, 'pseudolabel')
  x, u_w, _ = probe.weak_strong(batch, rng)
  lb, stats = forward(v, x)
  logits_u, _ = forward(v, u_w)   # USB: BatchNorm frozen on the unlabelled pass
  tau, step = between(usb.softmax(logits_u).max(-1)), 2
  out = run(build(model, 'pseudolabel', threshold=tau), v, batch, rng, step=step)
  mask = usb.fixed_threshold_mask(usb.softmax(logits_u), tau)
  unsup = usb.consistency_loss(logits_u, usb.softmax(logits_u).argmax(-1), 'ce', mask)
  want = usb.ce_loss(lb, batch['label']).mean() + unsup * usb.unsup_warmup(step, 0.4, STEPS)
  np.testing.assert_allclose(out.loss, want, rtol=1e-5)
  assert 0 < mask.mean() < 1
  assert_tree_close(out.batch_stats, stats)   # the labelled pass's statistics only


def test_meanteacher_loss_and_teacher_update(model, v):
  method = build(model, 'meanteacher')   # teacher_momentum 0.9, sigmoid ramp over 0.4 T
  batch, rng, step = make_batch(10), jax.random.key(10), 2
  teacher = jax.tree.map(lambda p: 0.9 * p, v['params'])
  out = run(method, v, batch, rng, {'teacher': teacher}, step=step)
  x, u_w, u_s = method.weak_strong(batch, rng)
  lb, stats = forward(v, x)
  student_s, _ = forward(v, u_s)
  teacher_w, _ = forward({**v, 'params': teacher}, u_w)
  unsup = usb.consistency_loss(student_s, usb.softmax(teacher_w), 'mse')
  want = usb.ce_loss(lb, batch['label']).mean() + unsup * usb.sigmoid_rampup(step, 0.4 * STEPS)
  np.testing.assert_allclose(out.loss, want, rtol=1e-5)
  assert_tree_close(out.batch_stats, stats)
  params = jax.tree.map(lambda p: p + 1.0, v['params'])
  state = TrainState(step=jnp.int32(3), params=params, batch_stats=v['batch_stats'],
                     opt_state=(), rng=jnp.zeros(2, jnp.uint32), extra={'teacher': teacher})
  new = method.after_update(state).extra['teacher']
  for n, t, p in zip(jax.tree.leaves(new), jax.tree.leaves(teacher), jax.tree.leaves(params)):
    np.testing.assert_allclose(n, usb.mean_teacher_ema(np.asarray(t), np.asarray(p), 0.9, 3),
                               rtol=1e-6, atol=1e-6)
  assert set(method.init_extra(v, None)['teacher']) == set(v['params'])


def test_mixmatch_loss_is_usbs(model, v):
  method = build(model, 'mixmatch')   # K = 2 views, T 0.5, alpha 0.5, lambda_u 100
  batch, rng, step = make_batch(11), jax.random.key(11), 1
  out = run(method, v, batch, rng, step=step)
  keys = jax.random.split(rng, 2 + 3)   # (labelled, 2 views, lambda, permutation)
  ulb = batch['unlabelled_image'].astype(np.float32) / 255
  x = method.weak(keys[0], batch['image'].astype(np.float32) / 255)
  views = [method.weak(k, ulb) for k in keys[1:3]]
  guess = usb.sharpen(sum(usb.softmax(forward(v, u)[0]) for u in views) / 2, 0.5)
  inputs = np.concatenate([x] + views).astype(np.float64)
  targets = np.concatenate([np.eye(K)[batch['label']], guess, guess])
  lam = float(out.metrics['mixup_lambda'])
  perm = np.asarray(jax.random.permutation(keys[4], inputs.shape[0]))
  mixed_x, mixed_y, _ = usb.mixup_one_target(inputs, targets, lam, perm)
  logits_x, stats = forward(v, jnp.asarray(mixed_x[:B], jnp.float32))
  logits_u, _ = forward(v, jnp.asarray(mixed_x[B:], jnp.float32))
  sup = usb.ce_loss(logits_x, mixed_y[:B]).mean()
  unsup = usb.consistency_loss(logits_u, mixed_y[B:], 'mse')
  want = sup + 100.0 * usb.unsup_warmup(step, 0.5, STEPS) * unsup
  np.testing.assert_allclose(out.loss, want, rtol=1e-4)
  assert 0.5 <= lam <= 1 and sorted(perm) == list(range(len(perm)))
  assert_tree_close(out.batch_stats, stats)


def test_labelled_unlabelled_stream_layout_and_resume():
  rng = np.random.default_rng(12)
  lab = [{'image': rng.integers(0, 256, (8, 8, 1), np.uint8), 'label': i % K} for i in range(6)]
  ulb = [{'image': rng.integers(0, 256, (8, 8, 1), np.uint8)} for _ in range(20)]
  it = labelled_unlabelled_iterator(lab, ulb, 2, 3, seed=0)
  first = [next(it) for _ in range(3)]
  b = first[0]
  assert b['image'].shape == (2, 8, 8, 1) and b['label'].shape == (2,)
  assert b['unlabelled_image'].shape == (6, 8, 8, 1) and b['unlabelled_index'].dtype == np.int32
  for batch in first:
    assert len(set(batch['unlabelled_index'])) == 6
    for i, image in zip(batch['unlabelled_index'], batch['unlabelled_image']):
      np.testing.assert_array_equal(image, ulb[i]['image'])
  state = it.get_state()
  after = next(it)
  again = labelled_unlabelled_iterator(lab, ulb, 2, 3, seed=0)
  again.set_state(state)
  resumed = next(again)
  for key in after:
    np.testing.assert_array_equal(after[key], resumed[key])


@pytest.mark.parametrize('name,key,value', [
    ('fixmatch', 'mu', 0), ('fixmatch', 'threshold', 1.5), ('flexmatch', 'thresh_warmup', 2),
    ('freematch', 'ema_momentum', 1.2), ('softmatch', 'n_sigma', 0.0), ('uda', 'tsa', 'cubic'),
    ('mixmatch', 'views', 0), ('meanteacher', 'ramp', 'step'), ('pseudolabel', 'ramp_fraction', 2.0),
    ('fixmatch', 'strong', 'no_such_view'), ('fixmatch', 'unsup_weight', -1.0)])
def test_check_names_the_bad_value(name, key, value):
  cls = methods.get(name)
  config = ml_collections.ConfigDict({**cls.example_config(), key: value})
  with pytest.raises(ValueError, match=rf'method\.{key}'):
    check_block(cls, config)


def test_views_know_their_names_and_the_randaugment_hook():
  images = jnp.full((2, 8, 8, 1), 0.5)
  for name in ('translate', 'translate_strong', 'flip_translate', 'flip_translate_strong'):
    out = jax.eval_shape(make_view(name), jax.random.key(0), images)
    assert out.shape == images.shape
  with pytest.raises(ValueError, match='known views'):
    make_view('no_such_view')
  try:
    from tlu.data.augment import randaugment   # pylint: disable=import-outside-toplevel
    present = hasattr(randaugment, 'strong_view')
  except ImportError:
    present = False
  if not present:
    with pytest.raises(ValueError, match='RandAugment is not in this build'):
      make_view('randaugment')
