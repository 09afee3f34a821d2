"""Test-split evaluation of a classifier: exact over the split, whatever the device count."""

import jax
import numpy as np

from tlu.data import loader
from tlu.train import mesh as mesh_lib


def evaluate_sums(eval_step, state, source, global_batch, mesh):
  """Sums eval_step's per-batch sums over one padded pass of `source`."""
  totals = {}
  for batch in loader.eval_batches(source, global_batch, process_index=jax.process_index(),
                                   process_count=jax.process_count()):
    sums = eval_step(state, mesh_lib.to_global(batch, mesh))
    totals = sums if not totals else jax.tree.map(lambda a, b: a + b, totals, sums)
  return {k: float(np.asarray(v)) for k, v in jax.device_get(totals).items()}


def classifier_metrics(eval_step, state, source, global_batch, mesh):
  """{'accuracy', 'loss'} on `source` with eval_step = make_eval_step(accuracy_sums(model))."""
  s = evaluate_sums(eval_step, state, source, global_batch, mesh)
  return {'accuracy': s['correct'] / s['count'], 'loss': s['loss_sum'] / s['count']}
