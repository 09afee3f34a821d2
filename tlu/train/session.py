"""One resumable training run inside a workdir: restore if a checkpoint exists, train, save.

Every stage (supervised, contrastive, transfer, adaptation) trains through this
function, so all of them resume the same way and write the same files.
"""

import os
import sys

import jax
import jax.numpy as jnp

from tlu.train import loop, mesh as mesh_lib
from tlu.train.checkpoint import Checkpointer
from tlu.train.step import make_train_step
from tlu.train.writers import MetricWriter


def fit(workdir, state, loss_fn, tx, batches, mesh, *, num_steps, evaluate=None, log_every=50,
        eval_every=0, checkpoint_every=100, keep_checkpoints=3, keep_stats=None,
        should_stop=lambda: False, progress=True, desc='train', on_log=None, train_step=None):
  """Trains `state` to `num_steps` with checkpoints in workdir/checkpoints.

  If the workdir already holds a checkpoint, the state and the data iterator are
  restored from the latest one and metrics.jsonl is cut back to that step.
  `train_step` reuses an already compiled step (sweeps over many small runs).
  Returns (state, final eval metrics, stopped_early).
  """
  # A private copy: the step donates its input, and callers may still hold these arrays.
  state = jax.device_put(jax.tree.map(jnp.copy, state), mesh_lib.replicated(mesh))
  checkpointer = Checkpointer(os.path.join(os.path.abspath(workdir), 'checkpoints'),
                              every=checkpoint_every, keep=keep_checkpoints)
  resumed = checkpointer.latest_step()
  writer = MetricWriter(workdir, resume_step=resumed or 0)
  try:
    if resumed is not None:
      state = checkpointer.restore(state, batches)
      if jax.process_index() == 0:
        print(f'{desc}: resuming from the checkpoint of step {resumed}', file=sys.stderr)
    train_step = train_step or make_train_step(loss_fn, tx, mesh, keep_stats=keep_stats)
    cfg = loop.LoopConfig(num_steps=num_steps, log_every=log_every, eval_every=eval_every,
                          progress=progress, progress_desc=desc)
    if int(jax.device_get(state.step)) >= num_steps:
      return state, (evaluate(state) if evaluate else {}), False
    return loop.run(state, train_step, batches, mesh, cfg, checkpointer=checkpointer,
                    writer=writer, evaluate=evaluate, should_stop=should_stop, on_log=on_log)
  finally:
    checkpointer.close()
    writer.close()
