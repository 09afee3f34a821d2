"""Linear probe: the same solution as scikit-learn's LogisticRegression on digit pixels."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from tlu.evaluate import logistic_regression as lp

C = 1.0


@pytest.fixture(scope='module')
def digits():
  x, y = load_digits(return_X_y=True)
  return train_test_split(x.astype(np.float32), y, test_size=0.25, random_state=0, stratify=y)


@pytest.fixture(scope='module')
def sklearn_fit(digits):
  x_train, _, y_train, _ = digits
  scaler = StandardScaler().fit(x_train)
  clf = LogisticRegression(C=C, tol=1e-6, max_iter=2000).fit(scaler.transform(x_train), y_train)
  return scaler, clf


def test_matches_sklearn_logistic_regression(digits, sklearn_fit):
  x_train, x_test, y_train, y_test = digits
  scaler, clf = sklearn_fit
  l2 = lp.l2_from_sklearn_c(C, len(x_train))
  result = lp.linear_probe(x_train, y_train, x_test, y_test, 10, l2=l2)
  probe, _ = lp.fit_linear_probe(x_train, y_train, 10, l2=l2)
  expected = clf.predict(scaler.transform(x_test))
  assert abs(result['accuracy'] - np.mean(expected == y_test)) <= 0.01
  assert np.mean(lp.predict(probe, x_test) == expected) >= 0.97
  # The regularisation mapping is right iff the (unique) minimiser is the same.
  np.testing.assert_allclose(probe['kernel'], clf.coef_.T, atol=0.02)


def test_adam_reaches_the_lbfgs_solution(digits):
  x_train, x_test, y_train, _ = digits
  l2 = lp.l2_from_sklearn_c(0.1, len(x_train))
  lbfgs, info_lbfgs = lp.fit_linear_probe(x_train, y_train, 10, l2=l2)
  adam, info_adam = lp.fit_linear_probe(x_train, y_train, 10, l2=l2, solver='adam', lr=0.05,
                                        steps=1000)
  assert info_adam['loss'] == pytest.approx(info_lbfgs['loss'], rel=1e-4)
  assert np.mean(lp.predict(adam, x_test) == lp.predict(lbfgs, x_test)) >= 0.99


def test_standardises_with_train_statistics(digits):
  x_train, x_test, y_train, _ = digits
  probe, _ = lp.fit_linear_probe(x_train, y_train, 10, l2=1e-3)
  np.testing.assert_allclose(probe['mean'], x_train.mean(0), atol=1e-4)
  # Constant pixels (always 0 in the corners) keep scale 1, as in StandardScaler.
  np.testing.assert_allclose(probe['scale'], StandardScaler().fit(x_train).scale_, rtol=1e-4)
  # So a per-feature affine change of the inputs does not change the predictions.
  # The fitted weights, and so the logits, agree up to float32 round-off carried through
  # the fit; predictions agree on every row whose top two logits are not within it.
  shifted, _ = lp.fit_linear_probe(x_train * 3.0 + 7.0, y_train, 10, l2=1e-3)
  for k in ('kernel', 'bias'):
    np.testing.assert_allclose(shifted[k], probe[k], atol=5e-3)

  def logits(p, x):
    z = (x - np.asarray(p['mean'])) / np.asarray(p['scale'])
    return z @ np.asarray(p['kernel']) + np.asarray(p['bias'])

  original = logits(probe, x_test)
  np.testing.assert_allclose(logits(shifted, x_test * 3.0 + 7.0), original, atol=0.05)
  top2 = np.sort(original, axis=1)[:, -2:]
  clear = top2[:, 1] - top2[:, 0] > 0.1
  assert clear.mean() > 0.98
  np.testing.assert_array_equal(lp.predict(shifted, x_test * 3.0 + 7.0)[clear],
                                lp.predict(probe, x_test)[clear])


def test_stops_at_tolerance(digits):
  x_train, _, y_train, _ = digits
  _, info = lp.fit_linear_probe(x_train, y_train, 10, l2=1e-2, steps=500, tol=1e-4)
  assert info['steps'] < 500
  _, capped = lp.fit_linear_probe(x_train, y_train, 10, l2=1e-2, steps=3, tol=0.0)
  assert capped['steps'] == 3


def test_rejects_unknown_solver(digits):
  with pytest.raises(ValueError, match='solver'):
    lp.fit_linear_probe(digits[0], digits[2], 10, solver='sgd')
