"""The stage protocol, flags, range checks, the workdir contract and one-line errors (exit 2
bad input or a workdir another run holds, 3 a non-finite loss, 74 a full disk, 143
preempted after saving, 130 Ctrl-C: tlu/train/stop.py) for every stage.

A stage is a module `experiments/<stage>.py` with `DEFAULT_CONFIG` (its config file),
`check(config, workdir, wired=False) -> plan`: every check that needs no compute, writing
nothing (a ValueError is bad input; wired: `config.source` is made earlier by the same
pipeline, so it is not opened yet), and `run(config, workdir, plan)`: claims the workdir,
computes (a sweep: cells read back when done, `tlu.train.sweep`), writes summary.json and
report.md. It ends with `common.launch(sys.modules[__name__])`; the pipeline checks
every stage it declares, then runs them in order. `run` holds the workdir's lock
(tlu/train/lock.py; not for a stage with `WRITES_WORKDIR = False`).
"""

import os
import re
import sys
import time

import jax
from absl import app, flags, logging
from etils import epath
from ml_collections import config_flags

from tlu import checks, diskfull
from tlu.train import compile_time, lock, stop, workdir as workdir_lib
from tlu.train.task import config_json

FLAGS = flags.FLAGS
EXIT_BAD_INPUT, EXIT_NON_FINITE, EXIT_IO_ERROR, EXIT_PREEMPTED = 2, 3, 74, 143


class ConfigError(ValueError):
  """Bad user input: the message is shown as is."""


def fail(message, code=EXIT_BAD_INPUT):
  print(f'error: {message}', file=sys.stderr)
  sys.exit(code)


def _flag_message(e):
  msg = str(e)
  key = re.search(r"'(\w+)", msg)
  if isinstance(e, (AttributeError, KeyError)) and key:
    hint = re.search(r'Did you mean "(\w+)"', msg)
    hint = f'did you mean {hint.group(1)!r}? ' if hint else ''
    return f'unknown config key {key.group(1)!r} ({hint}see the config file for the valid keys)'
  msg = msg.strip()
  if len(msg) > 1 and msg[0] == msg[-1] and msg[0] in '"\'':
    msg = msg[1:-1]
  return msg.splitlines()[0] if msg else type(e).__name__


def define_flags(default_config):
  """--config (overrides are read from sys.argv while defining it), --workdir, --multihost."""
  path = default_config
  for a in sys.argv[1:]:
    if a.startswith('--config='):
      path = a.split('=', 1)[1]
  if not os.path.isfile(path.split(':', 1)[0]):
    fail(f'config file {path.split(":", 1)[0]} does not exist')
  try:
    config_flags.DEFINE_config_file('config', default_config, 'ml_collections config file[:arg]',
                                    lock_config=True)
  except Exception as e:  # ml_collections raises Attribute/Key/TypeError
    fail(_flag_message(e))
  flags.DEFINE_string('workdir', None, 'run directory (default: a new folder under runs/)')
  flags.DEFINE_bool('multihost', False, 'call jax.distributed.initialize() (TPU pods, multi-GPU)')
  flags.DEFINE_string('compile_cache', _default_compile_cache(),
                      'JAX persistent compilation cache directory, used when '
                      'JAX_COMPILATION_CACHE_DIR is unset; empty: off')


def _default_compile_cache():
  base = os.environ.get('XDG_CACHE_HOME') or epath.Path('~').expanduser() / '.cache'
  return str(epath.Path(base) / 'tlu' / 'jax-compile')


def _parse(argv):
  try:
    rest = FLAGS(argv)
    checks.check_finite(FLAGS.config)  # also raises a config file's own loading error
    return rest
  except Exception as e:  # absl/ml_collections raise many types for bad flags
    fail(_flag_message(e))


def stage_name(stage):
  """'train' for experiments/train.py, also when it runs as `python -m` (as __main__)."""
  spec = getattr(stage, '__spec__', None)
  return (spec.name if spec else stage.__name__).rsplit('.', 1)[-1]


def check(stage, config, workdir, wired=False):
  """`stage.check`, its ValueError (and KeyError) turned into bad input."""
  try:
    return stage.check(config, workdir, wired)
  except (ValueError, KeyError) as e:
    raise ConfigError(str(e).strip('"')) from None


def main(stage, config, workdir=None):
  """One stage: check, then run, in `workdir` (default: a new folder under runs/)."""
  workdir = workdir or f'runs/{stage_name(stage)}-{time.strftime("%Y%m%d-%H%M%S")}'
  locked = workdir if getattr(stage, 'WRITES_WORKDIR', True) else None
  lock.check(locked)   # a workdir in use is refused before the checks' compute
  plan = check(stage, config, workdir)
  with lock.held(locked):
    stage.run(config, workdir, plan)


def launch(stage):
  """Defines the flags, then app.run of `main` with one-line errors for the user-facing
  exceptions."""
  from tlu.data.sources import DatasetError  # pylint: disable=import-outside-toplevel
  from tlu.train.checkpoint import CheckpointError  # pylint: disable=import-outside-toplevel
  from tlu.train.loop import NonFiniteLoss  # pylint: disable=import-outside-toplevel
  from tlu.train.task import Preempted  # pylint: disable=import-outside-toplevel
  define_flags(stage.DEFAULT_CONFIG)

  def wrapped(argv):
    del argv
    logging.set_verbosity(logging.ERROR)
    if FLAGS.multihost:
      jax.distributed.initialize()
    if FLAGS.compile_cache and not os.environ.get('JAX_COMPILATION_CACHE_DIR'):
      compile_time.enable_cache(FLAGS.compile_cache)
    start = time.perf_counter()
    try:
      with compile_time.CompileClock() as clock:
        main(stage, FLAGS.config, FLAGS.workdir)
      print(f'{stage_name(stage)}: {clock.line(time.perf_counter() - start)}')
    except (ConfigError, DatasetError, FileNotFoundError, workdir_lib.WorkdirError,
            CheckpointError) as e:
      fail(str(e))
    except Preempted as e:
      if stop.INTERRUPTED.is_set():
        stop.interrupted(f"error: {str(e).replace('preempted', 'interrupted (Ctrl-C)', 1)}")
      fail(str(e), EXIT_PREEMPTED)
    except NonFiniteLoss as e:
      kept = (f'the checkpoint of step {e.last_checkpoint} is kept'
              if e.last_checkpoint is not None else 'no checkpoint was written')
      fail(f'{e}; stopped, {kept}', EXIT_NON_FINITE)
    except Exception as e:  # pylint: disable=broad-except
      if not diskfull.is_disk_full(e):
        raise
      fail(diskfull.message(e), EXIT_IO_ERROR)

  app.run(wrapped, flags_parser=_parse)


def check_workdir(workdir, config, sweep_keys=()):
  workdir_lib.check(workdir, config_json(config), sweep_keys)


def claim_workdir(workdir, config, sweep_keys=()):
  workdir_lib.claim(workdir, config_json(config), sweep_keys)


def preempted():  # SIGTERM or Ctrl-C arrived (tlu/train/stop.py): the loop saves and stops
  return stop.REQUESTED.is_set()


def check_batch(batch_size, what='batch_size'):
  """The batch size of a stage that reads features: >= 1, divisible by the devices."""
  checks.check_values({what: batch_size}, {what: checks.POSITIVE_INT})
  if batch_size % jax.device_count():
    raise ConfigError(f'{what}={batch_size} is not divisible by the {jax.device_count()} '
                      f'devices; use a multiple of {jax.device_count()}')
