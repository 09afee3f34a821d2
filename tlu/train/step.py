"""The jit-compiled train step, generic over methods (`tlu.methods.base.Method`).

A method supplies a pure
  loss_fn(params, model_state, batch, rng) -> tlu.methods.output.LossOutput
with model_state = {'batch_stats', 'step': int32 scalar, 'extra': the method's state};
the record's `batch_stats` become the state's (they must have the model's tree: a method
that drops or mangles them is an error at trace time), its `extra` (if not None) the new
method state, its `metrics` are logged; and `after_update(state) -> state`, run inside the
same jit after the optimizer (EMA targets, queues, centring). The step differentiates
`method.objective`: `loss_fn`, plus the online linear probe's cross-entropy on
stop-gradient features when the task turns it on (`Method.objective`). A method with
update phases (`tlu.methods.phases`) gets one update per phase, in order, each over its
own subtrees with its own optimizer state.
"""

import functools

import jax
import jax.numpy as jnp
import optax

from tlu.methods import phases as phases_lib
from tlu.train import mesh as mesh_lib


def check_batch_stats(method, returned, expected):
  """ValueError unless `returned` has the tree and shapes of the model's `expected` stats."""
  shapes = lambda tree: (jax.tree.structure(tree), [jnp.shape(x) for x in jax.tree.leaves(tree)])
  if returned is None or shapes(returned) != shapes(expected):
    raise ValueError(
        f'method {method.name!r}: LossOutput.batch_stats must be the updated BatchNorm '
        f'statistics of the whole model (tree {jax.tree.structure(expected)}), got '
        f'{None if returned is None else jax.tree.structure(returned)}; return what '
        'Method.forward gives')


def _one_update(method, tx, state, model_state, batch, rng):
  grad_fn = jax.value_and_grad(method.objective, has_aux=True)
  (loss, out), grads = grad_fn(state.params, model_state, batch, rng)
  check_batch_stats(method, out.batch_stats, state.batch_stats)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {'loss': loss, 'grad_norm': optax.global_norm(grads), **out.metrics}
  return params, opt_state, out, metrics


def _phased_updates(method, tx, state, model_state, batch, rng):
  """The phases in order; metrics '<phase>_loss', '<phase>_grad_norm', '<phase>_<metric>'
  and 'loss' = the first phase's loss."""
  params, opt_state, metrics = dict(state.params), dict(state.opt_state), {}
  for i, phase in enumerate(method.phases):
    def objective(sub, params, loss_fn):
      return method.objective({**params, **sub}, model_state, batch, jax.random.fold_in(rng, i),
                              loss_fn)
    sub = phases_lib.select(params, phase.subtrees)
    (loss, out), grads = jax.value_and_grad(objective, has_aux=True)(
        sub, params, getattr(method, phase.loss))
    check_batch_stats(method, out.batch_stats, state.batch_stats)
    updates, opt_state[phase.name] = tx.txs[phase.name].update(grads, opt_state[phase.name], sub)
    params.update(optax.apply_updates(sub, updates))
    model_state = {**model_state, 'batch_stats': out.batch_stats,
                   'extra': model_state['extra'] if out.extra is None else out.extra}
    metrics.update({f'{phase.name}_loss': loss, f'{phase.name}_grad_norm': optax.global_norm(grads),
                    **{f'{phase.name}_{k}': v for k, v in out.metrics.items()}})
    metrics.setdefault('loss', loss)
  out = out.replace(batch_stats=model_state['batch_stats'], extra=model_state['extra'])
  return params, opt_state, out, metrics


def make_train_step(method, tx, mesh):
  """Returns jit(step)(state, batch) -> (state, metrics), batch sharded, state replicated."""
  update = functools.partial(_phased_updates if method.phases else _one_update, method, tx)

  def step(state, batch):
    model_state = {'batch_stats': state.batch_stats, 'step': state.step, 'extra': state.extra}
    params, opt_state, out, metrics = update(state, model_state, batch, state.step_key())
    features = out.outputs.get('features')
    if features is not None:   # collapse shows as a standard deviation near zero
      metrics['feature_std'] = feature_std(features)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=out.batch_stats,
                              opt_state=opt_state,
                              extra=state.extra if out.extra is None else out.extra)
    return method.after_update(new_state), metrics

  replicated = mesh_lib.replicated(mesh)
  return jax.jit(step, in_shardings=(replicated, mesh_lib.batch_sharding(mesh)),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def feature_std(features):
  """Mean over dimensions of the batch standard deviation of L2-normalised features (N, F).

  About 1/sqrt(F) for features spread over the sphere; 0 when they collapse to a point
  (the collapse statistic of SimSiam, section 4.1).
  """
  z = features.astype(jnp.float32)
  z = z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)
  return jax.lax.stop_gradient(jnp.mean(jnp.std(z, axis=0)))


def make_eval_step(metric_fn, mesh):
  """jit(fn)(state, batch) -> dict of per-batch sums; metric_fn(state, batch) gives them.

  Sums (not means) so padded batches and uneven splits average exactly.
  """
  return jax.jit(metric_fn, in_shardings=(mesh_lib.replicated(mesh), mesh_lib.batch_sharding(mesh)),
                 out_shardings=mesh_lib.replicated(mesh))


def accuracy_sums(model, head='head'):
  """metric_fn for classifiers: {'correct', 'count', 'loss_sum'} over masked examples."""

  def fn(state, batch):
    out = model.apply(state.variables, batch['image'].astype(jnp.float32) / 255.0, train=False,
                      heads=(head,))
    logits = out[head]
    mask = batch['mask'].astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])
    correct = (jnp.argmax(logits, -1) == batch['label']).astype(jnp.float32)
    return {'correct': jnp.sum(correct * mask), 'count': jnp.sum(mask),
            'loss_sum': jnp.sum(ce * mask)}

  return fn
