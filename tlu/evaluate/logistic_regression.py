"""Linear probe: multinomial logistic regression on frozen features, fitted on device.

Why: linear separability of frozen features is the standard measure of a learned
representation (e.g. SimCLR, Chen et al. 2020, sec. 4; CLIP's probe is scikit-learn's
L-BFGS logistic regression). Fitting it with optax inside one jit keeps the features on
the accelerator and gives the same answer as scikit-learn in a fraction of the time.

Objective, with z = (x - mean) / std standardised with training statistics:

  L(W, b) = mean_i CE(softmax(z_i W + b), y_i) + l2 / 2 * ||W||^2   (bias not penalised)

scikit-learn's `LogisticRegression(C=C)` (lbfgs, multinomial) minimises
C * sum_i CE_i + 1/2 ||W||^2, i.e. n * C times L with l2 = 1 / (C * n) for n training
rows; so `l2 = 1 / (C * n)` gives the same minimiser (`l2_from_sklearn_c`).
With `standardize=False`, z = x: with few labelled rows, per-feature statistics of
those rows amplify noisy low-variance features (pass L2-normalised features then).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

HIGHEST = jax.lax.Precision.HIGHEST
SOLVERS = ('lbfgs', 'adam')


def l2_from_sklearn_c(c, n_train):
  """The mean-loss `l2` with the same minimiser as scikit-learn's LogisticRegression(C=c)."""
  return 1.0 / (c * n_train)


def _standardiser(x):
  """Mean (F,) and scale (F,) of x (N, F); constant columns get scale 1, as StandardScaler."""
  mean = jnp.mean(x, axis=0)
  std = jnp.sqrt(jnp.mean(jnp.square(x - mean), axis=0))
  constant = jnp.all(x == x[:1], axis=0)
  return mean, jnp.where(constant | (std == 0), 1.0, std)


def _logits(probe, x):
  z = (x - probe['mean']) / probe['scale']
  return jnp.dot(z, probe['kernel'], precision=HIGHEST) + probe['bias']


def _loss(params, z, y, l2):
  logits = jnp.dot(z, params['kernel'], precision=HIGHEST) + params['bias']
  ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))
  return ce + 0.5 * l2 * jnp.sum(jnp.square(params['kernel']))


def _grad_max(grads):
  return jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in jax.tree.leaves(grads)]))


@functools.partial(jax.jit, static_argnames=('num_classes', 'solver', 'standardize'))
def _fit(x, y, l2, steps, tol, lr, num_classes, solver, standardize=True):
  if standardize:
    mean, scale = _standardiser(x)
  else:
    mean, scale = jnp.zeros(x.shape[1:], x.dtype), jnp.ones(x.shape[1:], x.dtype)
  z = (x - mean) / scale
  loss_fn = functools.partial(_loss, z=z, y=y, l2=l2)
  params = {'kernel': jnp.zeros((x.shape[1], num_classes), jnp.float32),
            'bias': jnp.zeros((num_classes,), jnp.float32)}
  if solver == 'lbfgs':
    # Full-batch L-BFGS with optax's default zoom (strong Wolfe) line search, as
    # scipy's L-BFGS-B in scikit-learn; value_and_grad_from_state reuses the value and
    # gradient the line search already computed at the accepted point.
    tx = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss_fn)
  else:
    tx = optax.adam(lr)
    value_and_grad = lambda p, state: jax.value_and_grad(loss_fn)(p)

  def step(carry):
    params, opt_state, i, _ = carry
    value, grads = value_and_grad(params, state=opt_state)
    updates, opt_state = tx.update(grads, opt_state, params, value=value, grad=grads,
                                   value_fn=loss_fn)
    return optax.apply_updates(params, updates), opt_state, i + 1, _grad_max(grads)

  def not_done(carry):
    _, _, i, grad_max = carry
    return (i < steps) & (grad_max > tol)

  init = (params, tx.init(params), jnp.zeros((), jnp.int32), jnp.array(jnp.inf, jnp.float32))
  params, _, n_steps, _ = jax.lax.while_loop(not_done, step, init)
  loss, grads = jax.value_and_grad(loss_fn)(params)
  probe = {'mean': mean, 'scale': scale, **params}
  return probe, {'loss': loss, 'grad_max': _grad_max(grads), 'steps': n_steps}


def fit_linear_probe(train_feats, train_labels, num_classes, *, l2=1e-4, steps=500, tol=1e-5,
                     solver='lbfgs', lr=1e-2, standardize=True):
  """Fits softmax regression on standardised features (objective in the module docstring).

  Compiled once per (feature shape, num_classes, solver); l2, steps, tol and lr are
  traced, so a sweep over them does not recompile.

  Args:
    train_feats: (N, F) features.
    train_labels: (N,) int labels in [0, num_classes).
    num_classes: C.
    l2: L2 weight decay on the kernel of the mean loss (see `l2_from_sklearn_c`).
    steps: maximum optimiser steps (L-BFGS iterations or Adam steps).
    tol: stop once every gradient entry has |g| <= tol (scipy's `pgtol`, which
      scikit-learn sets to its `tol` on the same mean objective).
    solver: 'lbfgs' (full batch, zoom line search) or 'adam' (full batch, step `lr`).
    lr: Adam learning rate; unused by L-BFGS, whose step comes from the line search.
    standardize: standardise features with training statistics (False: use as given).

  Returns:
    (probe, info): probe = {'mean' (F,), 'scale' (F,), 'kernel' (F, C), 'bias' (C,)}
    for `predict`; info = {'loss', 'grad_max', 'steps'} at the end of the fit.
  """
  if solver not in SOLVERS:
    raise ValueError(f'solver must be one of {SOLVERS}, got {solver!r}')
  x = jnp.asarray(train_feats, jnp.float32)
  y = jnp.asarray(train_labels, jnp.int32).reshape(-1)
  if x.ndim != 2 or x.shape[0] != y.shape[0]:
    raise ValueError(f'train_feats {x.shape} must be (N, F) with N = len(train_labels) '
                     f'{y.shape[0]}')
  probe, info = _fit(x, y, jnp.float32(l2), jnp.int32(steps), jnp.float32(tol), jnp.float32(lr),
                     num_classes=int(num_classes), solver=solver,
                     standardize=bool(standardize))
  return probe, {k: v.item() for k, v in jax.device_get(info).items()}


_predict = jax.jit(lambda probe, x: jnp.argmax(_logits(probe, x), axis=-1))


def predict(probe, feats):
  """(M, F) features -> (M,) int predicted classes (numpy) of a fitted probe."""
  return np.asarray(_predict(probe, jnp.asarray(feats, jnp.float32)))


def linear_probe(train_feats, train_labels, test_feats, test_labels, num_classes, *, l2=1e-4,
                 steps=500, tol=1e-5, solver='lbfgs', lr=1e-2, standardize=True):
  """Fits on train, scores on test: {'accuracy', 'train_accuracy', 'loss', 'grad_max', 'steps'}.

  Arguments as for `fit_linear_probe`; test_feats (M, F), test_labels (M,).
  `loss` is the training objective at the solution.
  """
  probe, info = fit_linear_probe(train_feats, train_labels, num_classes, l2=l2, steps=steps,
                                 tol=tol, solver=solver, lr=lr, standardize=standardize)
  test_labels = np.asarray(test_labels).reshape(-1)
  train_labels = np.asarray(train_labels).reshape(-1)
  return {'accuracy': float(np.mean(predict(probe, test_feats) == test_labels)),
          'train_accuracy': float(np.mean(predict(probe, train_feats) == train_labels)),
          **info}
