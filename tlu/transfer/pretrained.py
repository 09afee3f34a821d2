"""Backbones from other runs: a workdir's config.json gives the architecture, its checkpoint the weights.

Everything is checked before compute: the folder, its config, the checkpoint
step. Whether the weights fit the target is `transplant`'s (strict) decision.
"""

import json

from etils import epath

from tlu.train.checkpoint import restore_params


class PretrainedError(ValueError):
  """A source run that cannot be used; the message says why."""


def source_config(workdir):
  """The resolved config (a dict) of the run in `workdir` (local or gs://)."""
  path = epath.Path(workdir) / 'config.json'
  if not epath.Path(workdir).is_dir():
    raise PretrainedError(f'source workdir {workdir} does not exist')
  if not path.exists():
    raise PretrainedError(f'{workdir} has no config.json: it is not a tlu run directory')
  try:
    return json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise PretrainedError(f'{path} is not valid JSON ({e})') from None


def load_pretrained(workdir, step=None, config_dir=None):
  """(variables {'params', 'batch_stats'} as host arrays, model config dict, step).

  step: a checkpoint step of that run (default: the latest).
  config_dir: the run whose config.json names the architecture, when `workdir`
    holds only checkpoints (a cell of a sweep trained from that run's model).
  """
  config = source_config(config_dir or workdir)
  if 'model' not in config:
    raise PretrainedError(f'the config of {workdir} names no model')
  ckpt_dir = epath.Path(workdir) / 'checkpoints'
  if not ckpt_dir.is_dir() or not any(ckpt_dir.iterdir()):
    raise PretrainedError(f'{workdir} has no checkpoints: has that run trained yet?')
  try:
    variables, step = restore_params(str(ckpt_dir.resolve()) if '://' not in str(ckpt_dir)
                                     else str(ckpt_dir), step)
  except FileNotFoundError as e:
    raise PretrainedError(str(e)) from None
  except Exception as e:  # orbax/tensorstore raise many types for a damaged checkpoint
    raise PretrainedError(f'{ckpt_dir}: the checkpoint cannot be read '
                          f'({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})'
                          ) from None
  return variables, config['model'], step
