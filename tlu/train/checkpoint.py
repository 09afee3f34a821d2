"""orbax checkpoints of the train state and the grain iterator, written atomically.

Every process calls save/restore (orbax coordinates multi-host writes); the
data-iterator state is saved per process by grain's own handler, so a resumed
run continues every host's stream where it stopped.

A checkpoint is written in `<step>.orbax-checkpoint-tmp` and renamed into `<step>` only
once complete; `all_steps()` never lists a temporary directory and opening the manager
removes those left by an interrupted run. A full disk raises `tlu.diskfull.DiskFull`
naming the step (the temporary directory is removed, the older checkpoints are untouched).
"""

import contextlib
import gc
import logging
import shutil
import sys
import threading
import time

import grain
import jax
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

from tlu import diskfull


class CheckpointError(ValueError):
  """No checkpoint of a run directory can be restored; the message says which and why."""


def _reason(e):
  lines = [line for line in str(e).splitlines() if line.strip()]
  first = (lines[0] if lines else type(e).__name__).split('. See full TensorStore')[0]
  return first if len(first) <= 120 else first[:117] + '...'


class _AbandonedReads(logging.Filter):
  """Drops asyncio's "... exception was never retrieved" records.

  After a failed restore, orbax's reader futures hold the read error nobody awaits; when
  they are garbage-collected (at any later time) asyncio logs each with its traceback.
  """

  def filter(self, record):
    return 'exception was never retrieved' not in record.getMessage()


_ABANDONED_READS = _AbandonedReads()


class _DiskFullRecords(logging.Filter):
  """Drops orbax's log records (each with a traceback) of a write that met a full disk: the
  caller reports it once, as DiskFull."""

  def filter(self, record):
    error = record.exc_info[1] if record.exc_info else None
    return not (diskfull.is_disk_full(error) or diskfull.is_disk_full(record.getMessage()))


logging.getLogger('absl').addFilter(_DiskFullRecords())


@contextlib.contextmanager
def _quiet_failures():
  """Mutes the tracebacks that orbax's abandoned reader tasks print after a failed restore.

  The failure itself is reported by the caller; its coroutines and threads would
  otherwise print hundreds of lines ("Exception ignored in ...") to stderr, and asyncio
  would log its unretrieved futures whenever they are collected (filtered from then on).
  """
  hooks = sys.unraisablehook, threading.excepthook
  sys.unraisablehook, threading.excepthook = (lambda *_: None), (lambda *_: None)
  failed = []
  try:
    yield failed
  finally:
    if failed:
      logging.getLogger('asyncio').addFilter(_ABANDONED_READS)
      gc.collect()
      time.sleep(0.2)   # let the reader threads of a failed restore finish while muted
      gc.collect()
    sys.unraisablehook, threading.excepthook = hooks


class Checkpointer:
  """The `checkpoints/` folder of a workdir: latest `keep` kept, saves every `every` steps."""

  def __init__(self, directory, every, keep=3):
    self.directory, self.every, self.keep = epath.Path(directory), every, keep
    self._writing_step, self._failed = None, False
    self.manager = self._open()

  def _open(self):
    options = ocp.CheckpointManagerOptions(
        max_to_keep=self.keep, save_interval_steps=self.every, create=True,
        cleanup_tmp_directories=True, enable_async_checkpointing=True)
    return ocp.CheckpointManager(self.directory, options=options)

  def restore_intact(self, template, data_iterator=None):
    """(state, step, damaged) from the newest checkpoint that restores completely.

    damaged: [(step, reason)] of the newer checkpoints that could not be read, newest
    first. state and step are None when there is no checkpoint or none restores.
    Nothing is moved or deleted here (see `set_aside`).
    """
    damaged = []
    for step in sorted(self.manager.all_steps(), reverse=True):
      with _quiet_failures() as failed:
        try:
          return self.restore(template, data_iterator, step), step, damaged
        except Exception as e:  # orbax/tensorstore raise many types for damaged files
          damaged.append((step, _reason(e)))
          failed.append(step)
    return None, None, damaged

  def set_aside(self, steps, destination):
    """Moves the checkpoints of `steps` to `destination`/<step> (kept for recovery)."""
    self.manager.close()
    if jax.process_index() == 0:
      destination = epath.Path(destination)
      destination.mkdir(parents=True, exist_ok=True)
      for step in steps:
        target, suffix = destination / str(step), 0
        while target.exists():
          suffix += 1
          target = destination / f'{step}.{suffix}'
        (self.directory / str(step)).rename(target)
    multihost_utils.sync_global_devices('tlu checkpoints set aside')
    self.manager = self._open()

  def latest_step(self):
    return self.manager.latest_step()

  @contextlib.contextmanager
  def _writing(self):
    """DiskFull naming the step being written; its temporary directory removed (process 0)."""
    step = self._writing_step
    try:
      with diskfull.writing(f'the checkpoint of step {step}', self.directory):
        yield
    except diskfull.DiskFull:
      self._writing_step, self._failed = None, True
      if jax.process_index() == 0:
        for tmp in self.directory.glob(f'{step}.orbax-checkpoint-tmp*'):
          shutil.rmtree(tmp, ignore_errors=True)
      raise

  def save(self, step, state, data_iterator=None, force=False):
    """Saves when `step` is on the interval (or `force`); returns whether it did."""
    items = {'state': ocp.args.StandardSave(state)}
    if data_iterator is not None:
      items['data'] = grain.checkpoint.CheckpointSave(data_iterator)
    with self._writing():   # the previous save, finished by orbax before this one starts
      self.manager.wait_until_finished()
    self._writing_step = int(step)
    with self._writing():
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
    with self._writing():
      self.manager.wait_until_finished()

  def close(self):
    try:
      self.wait()
    finally:
      try:
        self.manager.close()
      except Exception as e:  # pylint: disable=broad-except
        if not (self._failed and diskfull.is_disk_full(e)):   # reported once, as DiskFull
          raise


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
