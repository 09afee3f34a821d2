"""One resumable training run inside a workdir: restore if a checkpoint exists, train, save.

Every stage (supervised, contrastive, transfer, adaptation) trains through this
function, so all of them resume the same way and write the same files.
"""

import sys

import jax
import jax.numpy as jnp

from tlu.train import loop, mesh as mesh_lib, workdir as workdir_lib
from tlu.train.checkpoint import CheckpointError, Checkpointer
from tlu.train.writers import MetricWriter


def fit(workdir, state, train_step, batches, mesh, options: loop.Options):
  """Trains `state` to `options.num_steps` with `train_step`, checkpoints in workdir/checkpoints.

  If the workdir already holds a checkpoint, the state and the data iterator are
  restored from the latest one and metrics.jsonl is cut back to that step.
  `options.host_update` also runs before the first step of a fresh run.
  Returns (state, final eval metrics, stopped_early).
  """
  desc, evaluate, host_update = options.desc, options.evaluate, options.host_update
  # A private copy: the step donates its input, and callers may still hold these arrays.
  state = jax.device_put(jax.tree.map(jnp.copy, state), mesh_lib.replicated(mesh))
  checkpointer = Checkpointer(str(workdir_lib.path(workdir, 'checkpoints')),
                              every=options.checkpoint_every, keep=options.keep_checkpoints)
  restored, resumed, damaged = checkpointer.restore_intact(state, batches)
  if damaged and restored is None:
    checkpointer.close()
    raise CheckpointError(
        f'{workdir}: no checkpoint restores (' + '; '.join(
            f'step {step}: {why}' for step, why in damaged) +
        '); nothing was changed: repair or remove them, or use another --workdir')
  if damaged:
    aside = str(workdir_lib.path(workdir, 'checkpoints_damaged'))
    if jax.process_index() == 0:
      print(f'warning: {desc}: cannot read the checkpoint of step '
            f'{" or ".join(str(s) for s, _ in damaged)} ({damaged[0][1]}); moved to {aside}, '
            f'resuming from step {resumed}', file=sys.stderr)
    checkpointer.set_aside([s for s, _ in damaged], aside)
  writer = MetricWriter(workdir, resume_step=resumed or 0)
  try:
    if resumed is not None:
      state = restored
      if jax.process_index() == 0:
        print(f'{desc}: resuming from the checkpoint of step {resumed}', file=sys.stderr)
    elif host_update is not None:
      state, metrics = host_update(state)
      for split, values in metrics.items():
        writer.write(0, split, values)
    if int(jax.device_get(state.step)) >= options.num_steps:
      return state, (evaluate(state) if evaluate else {}), False
    try:
      return loop.run(state, train_step, batches, mesh, options, checkpointer=checkpointer,
                      writer=writer)
    except loop.NonFiniteLoss as e:
      checkpointer.wait()
      e.last_checkpoint = checkpointer.latest_step()
      raise
  finally:
    checkpointer.close()
    writer.close()
