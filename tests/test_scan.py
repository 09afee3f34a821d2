"""SCAN's losses against a numpy transcription of the reference code (losses/losses.py)."""

import numpy as np
import pytest

from tlu.unsupervised import scan


def softmax(z):
  e = np.exp(z - z.max(1, keepdims=True))
  return e / e.sum(1, keepdims=True)


def reference_scan_loss(anchors, neighbors, entropy_weight):
  """SCANLoss.forward: BCE(similarity, 1) - w * entropy(mean prob), EPS = 1e-8."""
  a, p = softmax(anchors.astype(np.float64)), softmax(neighbors.astype(np.float64))
  similarity = (a * p).sum(1)
  consistency = -np.mean(np.maximum(np.log(similarity), -100.0))   # torch BCELoss, target 1
  x = np.maximum(a.mean(0), 1e-8)
  entropy = -(x * np.log(x)).sum()
  return consistency - entropy_weight * entropy, consistency, entropy


def reference_confidence_ce(weak, strong, threshold, balancing):
  """ConfidenceBasedCE.forward + MaskedCrossEntropyLoss + F.cross_entropy(weight, 'mean')."""
  prob = softmax(weak.astype(np.float64))
  max_prob, target = prob.max(1), prob.argmax(1)
  mask = max_prob > threshold
  t = target[mask]
  n, c = t.size, weak.shape[1]
  weight = np.ones(c)
  if balancing:
    idx, counts = np.unique(t, return_counts=True)
    weight[idx] = 1 / (counts / n)
  logp = np.log(softmax(strong.astype(np.float64)[mask]))
  ce = -logp[np.arange(n), t]
  return (weight[t] * ce).sum() / weight[t].sum()


@pytest.mark.parametrize('seed,weight', [(0, 5.0), (1, 2.0), (2, 0.0)])
def test_scan_loss_matches_reference(seed, weight):
  rng = np.random.default_rng(seed)
  anchors = rng.normal(size=(16, 10)).astype(np.float32) * 3
  neighbors = rng.normal(size=(16, 10)).astype(np.float32) * 3
  got = scan.scan_loss(anchors, neighbors, weight)
  np.testing.assert_allclose([float(g) for g in got],
                             reference_scan_loss(anchors, neighbors, weight), rtol=1e-5,
                             atol=1e-6)


def test_scan_consistency_log_is_floored_like_bce():
  anchors = np.array([[100.0, -100.0]], np.float32)
  neighbors = np.array([[-100.0, 100.0]], np.float32)
  _, consistency, _ = scan.scan_loss(anchors, neighbors)
  assert float(consistency) == pytest.approx(100.0)


@pytest.mark.parametrize('balancing', (True, False))
def test_confidence_ce_matches_reference(balancing):
  rng = np.random.default_rng(3)
  weak = rng.normal(size=(64, 5)).astype(np.float32) * 4
  weak[:8, 0] += 12   # class 0 over-represented among the confident
  strong = rng.normal(size=(64, 5)).astype(np.float32)
  loss, fraction, target = scan.confidence_ce(weak, strong, 0.9, balancing)
  expected = reference_confidence_ce(weak, strong, 0.9, balancing)
  np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
  prob = softmax(weak.astype(np.float64))
  assert float(fraction) == pytest.approx(np.mean(prob.max(1) > 0.9))
  np.testing.assert_array_equal(np.asarray(target), prob.argmax(1))


def test_confidence_ce_is_zero_without_confident_predictions():
  loss, fraction, _ = scan.confidence_ce(np.zeros((4, 3), np.float32),
                                         np.ones((4, 3), np.float32), 0.99)
  assert float(loss) == 0.0 and float(fraction) == 0.0


class _Source:
  def __init__(self, n):
    self.images = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 1),
                                                                            np.uint8)

  def __len__(self):
    return len(self.images)

  def __getitem__(self, i):
    return {'image': self.images[i], 'label': 0}


def test_neighbour_batches_draw_from_the_table_and_resume_from_their_state():
  from tlu.data.neighbour_batches import NeighbourBatches  # pylint: disable=import-outside-toplevel
  table = np.stack([np.arange(10), (np.arange(10) + 3) % 10, (np.arange(10) + 5) % 10], 1)
  batches = NeighbourBatches(_Source(10), 4, seed=0)
  batches.set_table(table)
  first = [next(batches) for _ in range(3)]
  for batch in first:
    for i, j, image in zip(batch['index'], batch['neighbour_index'], batch['neighbour_image']):
      assert j in table[i] and np.all(image == j)   # the neighbour's own image
  state = batches.get_state()
  later = [next(batches) for _ in range(3)]
  restored = NeighbourBatches(_Source(10), 4, seed=0)   # no table: it comes with the state
  restored.set_state(state)
  for a, b in zip(later, [next(restored) for _ in range(3)]):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
