"""Write your own files as a TFDS dataset, without TensorFlow:
`python -m experiments.prepare --config=configs/prepare.py:<format> --config.path=<file or
folder> --config.name=<name> [--config.data_dir=<dir>]` (formats: configs/prepare.py).

Every stage then reads it as `--config.dataset.name=<name> [--config.dataset.data_dir=<dir>]`.
Bad input: one line, exit 2, nothing written. `--workdir` is not used.
"""

import sys

from experiments import common
from tlu.data.prepare import run as prepare_lib
from tlu.data.prepare.layout import PrepareError


DEFAULT_CONFIG = 'configs/prepare.py'
WRITES_WORKDIR = False   # it writes a dataset, complete or not at all (tlu/data/prepare/writer.py)


def check(config, workdir, wired=False):
  """Nothing to check before the source is read: `prepare` checks it before writing."""
  del config, workdir, wired


def run(config, workdir, plan):
  del workdir, plan
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel
  # None: shown on a terminal only, so an error stays the one line on stderr elsewhere
  bar = lambda total: tqdm(total=total, unit=' images', desc=config.name or config.format,
                           disable=None if config.progress else True, file=sys.stderr,
                           dynamic_ncols=True)
  try:
    report = prepare_lib.prepare(
        config.format, config.path, config.name, config.data_dir,
        image_size=config.image_size, resize=config.resize, channels=config.channels,
        validation=config.validation, seed=config.seed, encoding=config.encoding,
        overwrite=config.overwrite, workers=config.workers, progress=bar)
  except PrepareError as e:
    raise common.ConfigError(str(e)) from None
  dir_flag = f' --config.dataset.data_dir={config.data_dir}' if config.data_dir else ''
  print(f'{report.line()}\nuse it as --config.dataset.name={report.name}{dir_flag}')


if __name__ == '__main__':
  common.launch(sys.modules[__name__])
