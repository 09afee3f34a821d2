"""What every stage shares: flags, config checks, the workdir contract, one-line errors.

Bad input fails here, before any compute, with one line on stderr and exit
code 2; a non-finite loss exits with 3 after keeping the last good checkpoint;
a preempted run (SIGTERM) saves and exits with 143.
"""

import json
import os
import re
import signal
import sys
import threading
import time

import jax
from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
EXIT_BAD_INPUT, EXIT_NON_FINITE, EXIT_PREEMPTED = 2, 3, 143


class ConfigError(ValueError):
  """Bad user input: the message is shown as is."""


def define_flags(default_config):
  """Defines --config (with --config.key=value overrides), --workdir and --multihost.

  config_flags reads the overrides from sys.argv while defining the flag, so an
  unknown key or a missing config file is reported from here.
  """
  _check_config_path(sys.argv[1:], default_config)
  try:
    config_flags.DEFINE_config_file('config', default_config, 'ml_collections config file[:arg]',
                                    lock_config=True)
  except Exception as e:  # ml_collections raises Attribute/Key/TypeError
    fail(_flag_message(e))
  flags.DEFINE_string('workdir', None, 'run directory (default: a new folder under runs/)')
  flags.DEFINE_bool('multihost', False, 'call jax.distributed.initialize() (TPU pods, multi-GPU)')


def fail(message, code=EXIT_BAD_INPUT):
  print(f'error: {message}', file=sys.stderr)
  sys.exit(code)


def _check_config_path(args, default):
  path = default
  for a in args:
    if a.startswith('--config='):
      path = a.split('=', 1)[1]
  path = path.split(':', 1)[0]
  if not os.path.isfile(path):
    fail(f'config file {path} does not exist')


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


def _parse(argv):
  try:
    rest = FLAGS(argv)
    FLAGS.config.to_dict()  # a config file that failed to load raises its error here
    return rest
  except Exception as e:  # absl/ml_collections raise many types for bad flags
    fail(_flag_message(e))


def launch(main, default_config):
  """Defines the flags, then app.run with one-line errors for the user-facing exceptions."""
  from tlu.data.sources import DatasetError  # pylint: disable=import-outside-toplevel
  from tlu.train.loop import NonFiniteLoss  # pylint: disable=import-outside-toplevel

  define_flags(default_config)
  signal.signal(signal.SIGTERM, _on_sigterm)

  def wrapped(argv):
    del argv
    logging.set_verbosity(logging.ERROR)
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


def write_text(path, text):
  """Atomic: a reader never sees half a file, a crash never leaves one."""
  tmp = f'{path}.tmp{os.getpid()}'
  with open(tmp, 'w') as f:
    f.write(text)
  os.replace(tmp, path)


def write_json(path, obj):
  write_text(path, json.dumps(obj, indent=2, sort_keys=True) + '\n')


def read_json(path):
  with open(path) as f:
    return json.load(f)


def check_workdir(workdir, config, sweep_keys=()):
  """Refuses a workdir that holds a run with another config (before anything is written).

  sweep_keys: top-level keys that only choose which independent cells a sweep
  runs (seeds, strategies): they may change between invocations.
  """
  path = os.path.join(workdir, 'config.json')
  if os.path.exists(path):
    with open(path) as f:
      old = json.load(f)
    new = config_dict(config)
    for k in sweep_keys:
      old.pop(k, None)
      new.pop(k, None)
    diffs = _diff(old, new)
    if diffs:
      raise ConfigError(f'{workdir} holds a run with a different config ({"; ".join(diffs[:3])}'
                        f'{"; ..." if len(diffs) > 3 else ""}); use another --workdir')


def claim_workdir(workdir, config, sweep_keys=()):
  """Checks, then creates the workdir and writes config.json (process 0)."""
  check_workdir(workdir, config, sweep_keys)
  path = os.path.join(workdir, 'config.json')
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    if sweep_keys or not os.path.exists(path):
      write_json(path, config_dict(config))


def check_batch(batch_size, what='batch_size'):
  n = jax.device_count()
  if batch_size % n:
    raise ConfigError(f'{what}={batch_size} is not divisible by the {n} devices; '
                      f'use a multiple of {n}')


_PREEMPTED = threading.Event()


def _on_sigterm(signum, frame):
  del signum, frame
  _PREEMPTED.set()


def preempted():
  """True once SIGTERM arrived (TPU VM preemption, `kill`): the loop saves and stops.

  One flag per process, installed by `launch`, so every stage run in-process
  (the pipeline, a transfer's source) sees the same request.
  """
  return _PREEMPTED.is_set()
