"""What every stage shares: flags, config checks, the workdir contract, one-line errors.

Bad input fails here, before any compute, with one line on stderr and exit
code 2; a non-finite loss exits with 3 after keeping the last good checkpoint;
a preempted run (SIGTERM) saves and exits with 143.
"""

import json
import os
import signal
import sys
import time

import jax
from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
EXIT_BAD_INPUT, EXIT_NON_FINITE, EXIT_PREEMPTED = 2, 3, 143


class ConfigError(ValueError):
  """Bad user input: the message is shown as is."""


def define_flags(default_config):
  config_flags.DEFINE_config_file('config', default_config, 'ml_collections config file[:arg]',
                                  lock_config=True)
  flags.DEFINE_string('workdir', None, 'run directory (default: a new folder under runs/)')
  flags.DEFINE_bool('multihost', False, 'call jax.distributed.initialize() (TPU pods, multi-GPU)')


def fail(message, code=EXIT_BAD_INPUT):
  print(f'error: {message}', file=sys.stderr)
  sys.exit(code)


def _parse(argv):
  try:
    rest = FLAGS(argv)
    FLAGS.config.to_dict()  # a config file that failed to load raises its error here
    return rest
  except Exception as e:  # absl/ml_collections raise many types for bad flags
    msg = str(e).strip().strip('"\'') or type(e).__name__
    if isinstance(e, (AttributeError, KeyError)):
      msg = f'unknown config key {msg} (see the config file for the valid keys)'
    fail(msg.splitlines()[0])


def launch(main):
  """app.run with one-line errors for the user-facing exceptions."""
  from tlu.data.sources import DatasetError  # pylint: disable=import-outside-toplevel
  from tlu.train.loop import NonFiniteLoss  # pylint: disable=import-outside-toplevel

  def wrapped(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    if FLAGS.multihost:
      jax.distributed.initialize()
    try:
      main(FLAGS.config, FLAGS.workdir)
    except (ConfigError, DatasetError, FileNotFoundError) as e:
      fail(str(e))
    except NonFiniteLoss as e:
      fail(f'{e}; stopped, the last good checkpoint is kept', EXIT_NON_FINITE)

  app.run(wrapped, flags_parser=_parse)


def resolve_workdir(workdir, stage):
  return workdir or os.path.join('runs', f'{stage}-{time.strftime("%Y%m%d-%H%M%S")}')


def config_dict(config):
  return json.loads(config.to_json_best_effort(sort_keys=True))


def _diff(old, new, prefix=''):
  keys = sorted(set(old) | set(new))
  out = []
  for k in keys:
    a, b = old.get(k, '<absent>'), new.get(k, '<absent>')
    if isinstance(a, dict) and isinstance(b, dict):
      out += _diff(a, b, f'{prefix}{k}.')
    elif a != b:
      out.append(f'{prefix}{k}: {a!r} -> {b!r}')
  return out


def write_json(path, obj):
  """Atomic: a reader never sees half a file, a crash never leaves one."""
  tmp = f'{path}.tmp{os.getpid()}'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def check_workdir(workdir, config):
  """Refuses a workdir that holds a run with another config (before anything is written)."""
  path = os.path.join(workdir, 'config.json')
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    diffs = _diff(old, config_dict(config))
    if diffs:
      raise ConfigError(f'{workdir} holds a run with a different config ({"; ".join(diffs[:3])}'
                        f'{"; ..." if len(diffs) > 3 else ""}); use another --workdir')


def claim_workdir(workdir, config):
  """Checks, then creates the workdir and writes config.json (process 0)."""
  check_workdir(workdir, config)
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    if not os.path.exists(os.path.join(workdir, 'config.json')):
      write_json(os.path.join(workdir, 'config.json'), config_dict(config))


def check_batch(batch_size, what='batch_size'):
  n = jax.device_count()
  if batch_size % n:
    raise ConfigError(f'{what}={batch_size} is not divisible by the {n} devices; '
                      f'use a multiple of {n}')


class Preemption:
  """SIGTERM (TPU VM preemption, `kill`) sets a flag; the loop saves and stops."""

  def __init__(self):
    self.requested = False
    signal.signal(signal.SIGTERM, self._handler)

  def _handler(self, signum, frame):
    del signum, frame
    self.requested = True

  def __call__(self):
    return self.requested
