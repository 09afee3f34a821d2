"""The generic training loop: steps, logging, evaluation, checkpoints, preemption.

The loop fetches metrics from the device only every `log_every` steps and
before each checkpoint, so the host never waits on the accelerator in between.
A non-finite loss stops the run before any checkpoint could hold it.
"""

import dataclasses
import math
import time
from typing import Callable, Optional

import jax
import numpy as np
from jax.experimental import multihost_utils
from tqdm import tqdm

from tlu.train import mesh as mesh_lib


class NonFiniteLoss(RuntimeError):
  """The loss became NaN/Inf; `step` is the first step (1-based count) where it did."""

  def __init__(self, step, last_checkpoint=None):
    super().__init__(f'loss is not finite at step {step}')
    self.step, self.last_checkpoint = step, last_checkpoint


@dataclasses.dataclass(frozen=True)
class Options:
  """Everything one run is told, passed down task -> session -> loop as one record.

  num_steps: train to this step; log_every: steps per logged (and finiteness-checked)
  window; checkpoint_every / keep_checkpoints: the checkpoint cadence and how many are
  kept; progress / desc: the progress bar; evaluate: the run's evaluations
  (`tlu.evaluators.Evaluations`: `due(step)`, `evaluate(state, step=None)`), run when one
  is due and at the last step; host_update(state) -> (state, {split: metrics}) every
  `host_every` steps (`tlu.methods.base.Method.host_update`); should_stop() polled every
  step (SIGTERM); on_log(step, train metrics) after each logged window.
  """
  num_steps: int
  log_every: int = 50
  checkpoint_every: int = 100
  keep_checkpoints: int = 3
  progress: bool = True
  desc: str = 'train'
  evaluate: Optional[Callable] = None
  host_update: Optional[Callable] = None
  host_every: int = 0
  should_stop: Callable[[], bool] = lambda: False
  on_log: Optional[Callable] = None


def _mean_metrics(window):
  host = jax.device_get(window)
  return {k: float(np.mean([m[k] for m in host])) for k in host[0]}


def _check_finite(window, first_step):
  for i, m in enumerate(jax.device_get(window)):
    if not math.isfinite(float(m['loss'])):
      raise NonFiniteLoss(first_step + i)


def _stop_requested(should_stop, step, every):
  """should_stop(), agreed by all processes: a host that stopped alone would hang the others.

  Multi-host, the flags are gathered every `every` steps (one tiny collective);
  single-host, every step.
  """
  if jax.process_count() == 1:
    return should_stop()
  if step % every:
    return False
  return bool(np.any(multihost_utils.process_allgather(np.asarray(should_stop()))))


def run(state, train_step, batches, mesh, cfg: Options, *, checkpointer=None, writer=None):
  """Trains from `state.step` to `cfg.num_steps`; returns (state, last eval metrics, stopped).

  batches: an iterator of process-local numpy batches with get_state/set_state. The
  evaluations due at a step are logged as one row of split 'test'. When should_stop()
  turns true the loop saves a checkpoint and returns with stopped=True. host_update
  runs every `host_every` steps except the last, after the evaluation and before the
  checkpoint of that step, so a resumed run has what it changed.
  """
  evaluate, host_update, host_every = cfg.evaluate, cfg.host_update, cfg.host_every
  should_stop, on_log = cfg.should_stop, cfg.on_log
  start = int(jax.device_get(state.step))
  window, window_start = [], start + 1
  eval_metrics = {}
  bar = tqdm(total=cfg.num_steps, initial=start, desc=cfg.desc, unit='step',
             disable=not cfg.progress or jax.process_index() != 0, dynamic_ncols=True)
  t0, steps_timed = time.perf_counter(), 0

  def flush(step):
    nonlocal window, window_start, t0, steps_timed
    if not window:
      return
    _check_finite(window, window_start)
    metrics = _mean_metrics(window)
    metrics['steps_per_sec'] = steps_timed / max(time.perf_counter() - t0, 1e-9)
    if writer is not None:
      writer.write(step, 'train', metrics)
    if on_log is not None:
      on_log(step, metrics)
    bar.set_postfix(loss=f"{metrics['loss']:.4f}", refresh=False)
    window, window_start, t0, steps_timed = [], step + 1, time.perf_counter(), 0

  stopped = _stop_requested(should_stop, 0, 1)
  if stopped and checkpointer is not None:  # asked to stop before the first step of this run
    checkpointer.save(start, state, batches, force=True)
  for step in range(start + 1, cfg.num_steps + 1 if not stopped else start + 1):
    batch = mesh_lib.to_global(next(batches), mesh)
    state, metrics = train_step(state, batch)
    window.append(metrics)
    steps_timed += 1
    bar.update(1)
    stopped = _stop_requested(should_stop, step, cfg.log_every)
    last = step == cfg.num_steps
    saving = checkpointer is not None and (
        last or stopped or step % checkpointer.every == 0)
    if step % cfg.log_every == 0 or saving or last:
      flush(step)
    if evaluate and (last or evaluate.due(step)):
      eval_metrics = evaluate(state, None if last else step)
      if writer is not None:
        writer.write(step, 'test', eval_metrics)
      bar.write(f'step {step}: ' + ', '.join(f'{k}={v:.4f}' for k, v in eval_metrics.items()))
    if host_update is not None and host_every and step % host_every == 0 and not last:
      state, host_metrics = host_update(state)
      for split, metrics in host_metrics.items():
        if writer is not None:
          writer.write(step, split, metrics)
    if saving:
      checkpointer.save(step, state, batches, force=last or stopped)
    if stopped:
      break
  bar.close()
  if checkpointer is not None:
    checkpointer.wait()
  return state, eval_metrics, stopped
