"""orbax checkpoints of the train state and the grain iterator, written atomically.

Every process calls save/restore (orbax coordinates multi-host writes); the
data-iterator state is saved per process by grain's own handler, so a resumed
run continues every host's stream where it stopped.
"""

import grain
import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """The `checkpoints/` folder of a workdir: latest `keep` kept, saves every `every` steps."""

  def __init__(self, directory, every, keep=3):
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, save_interval_steps=every, create=True,
        cleanup_tmp_directories=True, enable_async_checkpointing=True)
    self.manager = ocp.CheckpointManager(directory, options=options)
    self.every = every

  def latest_step(self):
    return self.manager.latest_step()

  def save(self, step, state, data_iterator=None, force=False):
    """Saves when `step` is on the interval (or `force`); returns whether it did."""
    items = {'state': ocp.args.StandardSave(state)}
    if data_iterator is not None:
      items['data'] = grain.checkpoint.CheckpointSave(data_iterator)
    return self.manager.save(int(step), args=ocp.args.Composite(**items), force=force)

  def restore(self, template, data_iterator=None, step=None):
    """Restores into `template`'s structure, dtypes and shardings; resets `data_iterator`."""
    step = self.latest_step() if step is None else step
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    items = {'state': ocp.args.StandardRestore(abstract)}
    if data_iterator is not None:
      items['data'] = grain.checkpoint.CheckpointRestore(data_iterator)
    return self.manager.restore(step, args=ocp.args.Composite(**items))['state']

  def wait(self):
    self.manager.wait_until_finished()

  def close(self):
    self.manager.wait_until_finished()
    self.manager.close()


def restore_params(directory, step=None):
  """Variables {'params', 'batch_stats'} of another run's checkpoint, as host numpy trees.

  Used by transfer: no template is needed because the target decides what it
  takes. Shapes come from the checkpoint's metadata and every array is restored
  onto one local device, so a checkpoint written on a pod or on 8 devices loads
  on a laptop (and the other way round).
  """
  with ocp.CheckpointManager(directory, item_handlers={'state': ocp.StandardCheckpointHandler()},
                             options=ocp.CheckpointManagerOptions(read_only=True)) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'no checkpoint in {directory}')
    if step not in manager.all_steps():
      raise FileNotFoundError(f'no checkpoint for step {step} in {directory}; '
                              f'there are {sorted(manager.all_steps())}')
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=local),
                          manager.item_metadata(step)['state'])
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target)))['state']
  restored = jax.device_get(restored)
  return {'params': restored['params'], 'batch_stats': restored.get('batch_stats', {})}, step
