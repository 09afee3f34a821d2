"""Offline linear probe: softmax regression (`tlu.evaluate.logistic_regression`) on the frozen
backbone features of every row of the first split, scored on the second (`probe_input` 'l2':
L2-normalised features as they are; 'standardized': raw features standardised with the
training rows' statistics, which with few labelled rows amplify noisy features)."""

import numpy as np

from tlu import checks
from tlu.evaluate import logistic_regression
from tlu.evaluate.features import l2_normalize
from tlu.evaluators import EVALUATORS, Evaluator
from tlu.evaluators.knn import fit_and_score

PROBE_INPUTS = ('l2', 'standardized')


def check_probe(probe_input):
  if probe_input not in PROBE_INPUTS:
    raise ValueError(f'probe_input={probe_input!r} must be one of {PROBE_INPUTS}')


def probe_accuracy(x_train, y_train, x_test, y_test, num_classes, *, probe_input, l2, steps):
  """Test accuracy of softmax regression fitted on (x_train (N, F), y_train (N,))."""
  standardize = probe_input == 'standardized'
  if not standardize:
    x_train, x_test = l2_normalize(x_train), l2_normalize(x_test)
  return logistic_regression.linear_probe(
      x_train, np.asarray(y_train).reshape(-1), x_test, y_test, num_classes, l2=l2, steps=steps,
      standardize=standardize)['accuracy']


@EVALUATORS.register('linear_probe')
class LinearProbe(Evaluator):
  """-> {'accuracy'} (prefix 'linear_probe_'); l2: the mean loss's penalty (1e-4 is
  scikit-learn's C ~ 7 at 1,437 rows); steps: at most this many L-BFGS iterations."""
  prefix, splits, metrics = 'linear_probe_', ('train', 'test'), ('accuracy',)
  ranges = {'l2': checks.NON_NEGATIVE, 'steps': checks.POSITIVE_INT}

  def __init__(self, ctx, splits, probe_input='l2', l2=1e-4, steps=500):
    super().__init__(ctx, splits)
    fit_and_score(self.split_names)
    check_probe(probe_input)
    self.options = dict(probe_input=probe_input, l2=l2, steps=steps)

  def __call__(self, state):
    (xtr, ytr), (xte, yte) = self.features(state)
    return {'accuracy': probe_accuracy(xtr, ytr, xte, yte, self.ctx.num_classes,
                                       **self.options)}
