"""The semi-supervised rules (tlu/semisup) against numpy transcriptions of USB's hooks
(tests/usb_reference.py) on random inputs, the stateful ones over several steps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import usb_reference as usb
from tlu.semisup import consistency, thresholds

K = 4


def peaked_probs(rng, n, k=K, scale=3.0):
  """Softmax of scaled Gaussian logits: max probabilities spread over (1/k, 1)."""
  return usb.softmax(scale * rng.normal(size=(n, k)))


def f32(x):
  return jnp.asarray(x, jnp.float32)


def test_fixed_mask_is_the_confidence_threshold():
  probs = peaked_probs(np.random.default_rng(0), 64)
  mask = thresholds.fixed_mask(f32(probs), 0.7)
  want = usb.fixed_threshold_mask(probs, 0.7)
  assert 0 < want.sum() < 64
  np.testing.assert_array_equal(mask, want)


@pytest.mark.parametrize('warmup', [True, False])
def test_flexmatch_state_and_masks_follow_usb_over_steps(warmup):
  rng = np.random.default_rng(1)
  n_ulb, batch, tau = 40, 12, 0.7
  ref = usb.FlexMatchThresholdingHook(n_ulb, K, warmup)
  state = thresholds.init_flexmatch(n_ulb, K)
  step = jax.jit(lambda s, p, i: thresholds.flexmatch_mask(s, p, i, tau, warmup))
  for t in range(8):
    probs = peaked_probs(rng, batch, scale=1.0 + t)   # growing confidence
    idx = rng.permutation(n_ulb)[:batch]
    want = ref.masking(probs, idx, tau)
    state, mask = step(state, f32(probs), jnp.asarray(idx, jnp.int32))
    np.testing.assert_array_equal(mask, want, err_msg=f'step {t}')
    np.testing.assert_array_equal(state['selected_label'], ref.selected_label)
    np.testing.assert_allclose(state['classwise_acc'], ref.classwise_acc, rtol=1e-6)
  assert 0 < ref.classwise_acc.max() <= 1 and (ref.selected_label >= 0).any()


def test_flexmatch_lets_everything_through_before_any_class_is_learnt():
  state = thresholds.init_flexmatch(10, K)
  probs = peaked_probs(np.random.default_rng(2), 5, scale=0.1)   # all below tau
  new, mask = thresholds.flexmatch_mask(state, f32(probs), jnp.arange(5), 0.95)
  np.testing.assert_array_equal(mask, 1.0)   # M(0) tau = 0
  np.testing.assert_array_equal(new['selected_label'], -1)
  np.testing.assert_array_equal(new['classwise_acc'], 0.0)


@pytest.mark.parametrize('use_quantile,clip_thresh', [(False, False), (True, True)])
def test_freematch_thresholds_follow_usb_over_steps(use_quantile, clip_thresh):
  rng = np.random.default_rng(3)
  m = 0.5
  ref = usb.FreeMatchThresholingHook(K, m, use_quantile, clip_thresh)
  state = thresholds.init_freematch(K)
  step = jax.jit(lambda s, p: thresholds.freematch_mask(s, p, m, use_quantile, clip_thresh))
  partial = []
  for t in range(6):
    probs = peaked_probs(rng, 16, scale=2.0)
    want = ref.masking(probs)
    partial.append(0 < want.sum() < 16)
    state, mask = step(state, f32(probs))
    np.testing.assert_array_equal(mask, want, err_msg=f'step {t}')
    np.testing.assert_allclose(state['time_p'], ref.time_p, rtol=1e-5)
    np.testing.assert_allclose(state['p_model'], ref.p_model, rtol=1e-5)
    np.testing.assert_allclose(state['label_hist'], ref.label_hist, rtol=1e-5)
  assert any(partial)   # the threshold rose into the confidences


def test_freematch_fairness_is_usbs_entropy_loss_on_the_masked_rows():
  rng = np.random.default_rng(4)
  logits = 2 * rng.normal(size=(20, K))
  mask = (rng.random(20) < 0.5).astype(np.float64)
  p_model = usb.softmax(rng.normal(size=K))
  label_hist = np.array([0.5, 0.3, 0.2, 0.0])   # an empty class: 1/0 counts as 0
  got = thresholds.freematch_fairness(f32(mask), f32(logits), f32(p_model), f32(label_hist))
  want = usb.freematch_entropy_loss(mask, logits, p_model, label_hist)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  zero = thresholds.freematch_fairness(jnp.zeros(20), f32(logits), f32(p_model),
                                       f32(label_hist))
  assert float(zero) == 0.0   # USB adds no term when nothing is masked in
  grad = jax.grad(lambda z: thresholds.freematch_fairness(f32(mask), z, f32(p_model),
                                                          f32(label_hist)))(f32(logits))
  assert np.all(np.isfinite(grad)) and np.all(grad[mask == 0] == 0)


def test_softmatch_alignment_and_weights_follow_usb_over_steps():
  rng = np.random.default_rng(5)
  m = 0.8
  align, weigh = usb.DistAlignEMAHook(K, m), usb.SoftMatchWeightingHook(K, 2, m)
  state = thresholds.init_softmatch(K)

  @jax.jit
  def step(s, p):
    s, aligned = thresholds.uniform_alignment(s, p, m)
    s, weights = thresholds.softmatch_weights(s, aligned, m, 2.0)
    return s, aligned, weights

  for t in range(5):
    probs = peaked_probs(rng, 16, scale=1.0 + t)
    want_aligned = align.dist_align(probs)
    want = weigh.masking(want_aligned)
    state, aligned, weights = step(state, f32(probs))
    np.testing.assert_allclose(aligned, want_aligned, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(weights, want, rtol=1e-5, atol=1e-7, err_msg=f'step {t}')
    np.testing.assert_allclose(state['p_model'], align.p_model, rtol=1e-5)
    np.testing.assert_allclose(state['mu'], weigh.prob_max_mu_t, rtol=1e-5)
    np.testing.assert_allclose(state['var'], weigh.prob_max_var_t, rtol=1e-5)
  assert want.min() < 0.99 and want.max() == 1.0


@pytest.mark.parametrize('schedule', consistency.TSA_SCHEDULES)
def test_tsa_threshold_is_usbs(schedule):
  for it in (0, 3, 10):
    np.testing.assert_allclose(consistency.tsa_threshold(schedule, it, 10, K),
                               usb.uda_tsa(schedule, it, 10, K), rtol=1e-6)


def test_cross_entropy_hard_and_soft_and_mse_are_usbs():
  rng = np.random.default_rng(6)
  logits, labels = rng.normal(size=(8, K)), rng.integers(0, K, 8)
  soft = usb.softmax(rng.normal(size=(8, K)))
  mask = (rng.random(8) < 0.5).astype(np.float64)
  np.testing.assert_allclose(consistency.masked_mean(
      consistency.cross_entropy(f32(logits), jnp.asarray(labels)), f32(mask)),
      usb.consistency_loss(logits, labels, 'ce', mask), rtol=1e-5)
  np.testing.assert_allclose(consistency.masked_mean(
      consistency.cross_entropy(f32(logits), f32(soft)), f32(mask)),
      usb.consistency_loss(logits, soft, 'ce', mask), rtol=1e-5)
  np.testing.assert_allclose(consistency.mse_probs(f32(logits), f32(soft)).mean(),
                             usb.consistency_loss(logits, soft, 'mse'), rtol=1e-5)


def test_sharpen_and_mixup_are_mixmatchs():
  rng = np.random.default_rng(7)
  p = usb.softmax(rng.normal(size=(6, K)))
  np.testing.assert_allclose(consistency.sharpen(f32(p), 0.5), usb.sharpen(p, 0.5), rtol=1e-5)
  x, y = rng.normal(size=(6, 3, 3, 1)), usb.softmax(rng.normal(size=(6, K)))
  perm = rng.permutation(6)
  lam = float(consistency.mixup_lambda(jax.random.key(0), 0.5))
  assert 0.5 <= lam <= 1
  want_x, want_y, _ = usb.mixup_one_target(x, y, lam, perm)
  got_x, got_y = consistency.mixup(f32(x), f32(y), lam, jnp.asarray(perm))
  np.testing.assert_allclose(got_x, want_x, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got_y, want_y, rtol=1e-5, atol=1e-6)


def test_mixup_lambda_is_the_larger_side_of_a_beta_draw():
  lams = jax.vmap(lambda k: consistency.mixup_lambda(k, 0.5))(
      jax.random.split(jax.random.key(1), 4000))
  draws = np.random.default_rng(8).beta(0.5, 0.5, 200000)
  want = np.maximum(draws, 1 - draws)
  assert float(lams.min()) >= 0.5
  np.testing.assert_allclose(float(lams.mean()), want.mean(), atol=0.01)
  np.testing.assert_allclose(np.quantile(lams, [0.25, 0.5, 0.75]),
                             np.quantile(want, [0.25, 0.5, 0.75]), atol=0.02)
  assert float(consistency.mixup_lambda(jax.random.key(2), 0.0)) == 1.0


def test_ramps_and_teacher_decay_are_the_references():
  for it in (0, 5, 20, 40, 100):
    np.testing.assert_allclose(consistency.linear_rampup(it, 100, 0.4),
                               usb.unsup_warmup(it, 0.4, 100), rtol=1e-6)
    np.testing.assert_allclose(consistency.sigmoid_rampup(it, 100, 0.4),
                               usb.sigmoid_rampup(it, 40), rtol=1e-5)
  ema, params = np.array([1.0, -2.0]), np.array([3.0, 0.5])
  for step in (1, 2, 10, 5000):
    np.testing.assert_allclose(
        ema * consistency.teacher_decay(step, 0.999)
        + params * (1 - consistency.teacher_decay(step, 0.999)),
        usb.mean_teacher_ema(ema, params, 0.999, step), rtol=1e-6)


def test_flexmatch_maps_the_learning_effect_through_the_convex_function():
  # beta = 0.5 for every class: the threshold is M(0.5) tau = tau / 3 = 0.3 (eq. 7), so a
  # confidence of 0.4 passes (it would not under tau * beta = 0.45).
  ref = usb.FlexMatchThresholdingHook(2, 3)
  ref.classwise_acc = np.array([0.5, 0.5, 0.5])
  probs = np.array([[0.4, 0.35, 0.25]])
  state = {'selected_label': jnp.full((2,), -1, jnp.int32), 'classwise_acc': f32([0.5] * 3)}
  want = ref.masking(probs, np.arange(1), 0.9)
  _, mask = thresholds.flexmatch_mask(state, f32(probs), jnp.arange(1), 0.9)
  np.testing.assert_array_equal(mask, want)
  np.testing.assert_array_equal(mask, [1.0])
