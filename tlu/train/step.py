"""The jit-compiled train step, generic over methods (`tlu.methods.base.Method`).

A method supplies a pure
  loss_fn(params, model_state, batch, rng) -> (loss, aux)
with model_state = {'batch_stats', 'step': int32 scalar, 'extra': the method's state}
and aux a dict holding 'batch_stats' (updated statistics), optionally 'extra' (new
method state) and 'metrics' (scalars to log); and `after_update(state) -> state`,
run inside the same jit after the optimizer (EMA targets, queues, centring). The step
differentiates `method.objective`: `loss_fn`, plus the online linear probe's
cross-entropy on stop-gradient features when the task turns it on (`Method.objective`).
"""

import jax
import jax.numpy as jnp
import optax

from tlu.train import mesh as mesh_lib


def make_train_step(method, tx, mesh):
  """Returns jit(step)(state, batch) -> (state, metrics), batch sharded, state replicated."""

  def step(state, batch):
    model_state = {'batch_stats': state.batch_stats, 'step': state.step, 'extra': state.extra}
    grad_fn = jax.value_and_grad(method.objective, has_aux=True)
    (loss, aux), grads = grad_fn(state.params, model_state, batch, state.step_key())
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {'loss': loss, 'grad_norm': optax.global_norm(grads), **aux.get('metrics', {})}
    features = aux.get('outputs', {}).get('features')
    if features is not None:   # collapse shows as a standard deviation near zero
      metrics['feature_std'] = feature_std(features)
    new_state = state.replace(step=state.step + 1, params=params,
                              batch_stats=aux.get('batch_stats', state.batch_stats),
                              opt_state=opt_state, extra=aux.get('extra', state.extra))
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
