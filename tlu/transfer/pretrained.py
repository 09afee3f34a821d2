"""Backbones from other runs: a workdir's config.json gives the architecture, its checkpoint the weights.

Everything is checked before compute: the folder, its config, the checkpoint
step. Whether the weights fit the target is `transplant`'s (strict) decision.
"""

import json
import os

from tlu.train.checkpoint import restore_params


class PretrainedError(ValueError):
  """A source run that cannot be used; the message says why."""


def source_config(workdir):
  """The resolved config (a dict) of the run in `workdir`."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.isdir(workdir):
    raise PretrainedError(f'source workdir {workdir} does not exist')
  if not os.path.exists(path):
    raise PretrainedError(f'{workdir} has no config.json: it is not a tlu run directory')
  with open(path) as f:
    return json.load(f)


def load_pretrained(workdir, step=None, config_dir=None):
  """(variables {'params', 'batch_stats'} as host arrays, model config dict, step).

  step: a checkpoint step of that run (default: the latest).
  config_dir: the run whose config.json names the architecture, when `workdir`
    holds only checkpoints (a cell of a sweep trained from that run's model).
  """
  config = source_config(config_dir or workdir)
  if 'model' not in config:
    raise PretrainedError(f'the config of {workdir} names no model')
  ckpt_dir = os.path.join(os.path.abspath(workdir), 'checkpoints')
  if not os.path.isdir(ckpt_dir) or not os.listdir(ckpt_dir):
    raise PretrainedError(f'{workdir} has no checkpoints: has that run trained yet?')
  try:
    variables, step = restore_params(ckpt_dir, step)
  except FileNotFoundError as e:
    raise PretrainedError(str(e)) from None
  return variables, config['model'], step
