"""Convert a torchvision / timm / big_vision checkpoint file into a tlu run directory:
`python -m experiments.convert --config=configs/convert.py:<format> --config.arch=<name>
--config.checkpoint=<file> --workdir=<dir>` (see configs/convert.py and docs/pretrained.md).

Writes a run directory (config.json with the model and its input convention,
checkpoints/, convert.json) every stage takes as `--config.source`; bad input: exit 2.
"""

import sys

from experiments import common
from tlu import convert as convert_lib
from tlu.convert import run as run_lib
from tlu.train.task import config_json

DEFAULT_CONFIG = 'configs/convert.py'


def check(config, workdir, wired=False):
  del workdir, wired
  if config.format not in convert_lib.FORMATS:
    raise ValueError(f'format {config.format!r}: use configs/convert.py:<format>, one '
                     f'of {convert_lib.FORMATS}')
  for key in ('arch', 'checkpoint'):
    if not config[key]:
      raise ValueError(f'set --config.{key}=... (see configs/convert.py)')


def run(config, workdir, plan):
  del plan
  overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in config.model.items()}
  try:   # the file is read here: ConvertError, FileFormatError say why it does not convert
    converted = convert_lib.convert(config.format, config.checkpoint, config.arch, overrides)
  except ValueError as e:
    raise common.ConfigError(f'{config.checkpoint}: {e}' if config.checkpoint not in str(e)
                             else str(e)) from None
  print(converted.report.table())
  wrote = run_lib.write(workdir, config_json(config), converted)
  print(f'{"converted into" if wrote else "already converted in"} {workdir} '
        f'({converted.num_classes or "no"} classifier outputs); use it as '
        f'--config.source={workdir}')


if __name__ == '__main__':
  common.launch(sys.modules[__name__])
