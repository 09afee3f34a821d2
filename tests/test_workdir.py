"""Run directories go through etils.epath: a stage runs on an epath.Path workdir, and no plain
file call on a run-directory path is left in the code that writes them."""

import json
import re
from pathlib import Path

from etils import epath

from conftest import ROOT

# Files that touch run directories, and the plain-file calls they may not make.
PLAIN = re.compile(r'(?<![\w.])open\(|os\.(path|makedirs|replace|rename|listdir|remove)\b')
ALLOWED = {('experiments/common.py', 'os.path.isfile(path.split'),   # the config file
           ('tlu/train/workdir.py', 'os.path.abspath(root)')}        # makes local paths absolute


def test_no_plain_file_call_on_run_directories():
  files = [*Path(ROOT, 'experiments').glob('*.py'), *Path(ROOT, 'tlu', 'train').glob('*.py'),
           *Path(ROOT, 'tlu', 'report').glob('*.py'), *Path(ROOT, 'tlu', 'adapt').glob('*.py'),
           Path(ROOT, 'tlu', 'transfer', 'pretrained.py'),
           *Path(ROOT, 'tlu', 'evaluate').glob('run_features.py')]
  offending = []
  for f in files:
    rel = str(f.relative_to(ROOT))
    for line in f.read_text().splitlines():
      if PLAIN.search(line) and not any(rel == a and snippet in line for a, snippet in ALLOWED):
        offending.append(f'{rel}: {line.strip()}')
  assert not offending, offending


def test_a_stage_runs_on_an_epath_workdir(tmp_path, data_dir):
  from configs import digits_supervised  # pylint: disable=import-outside-toplevel
  from experiments import common, train  # pylint: disable=import-outside-toplevel
  config = digits_supervised.get_config()
  config.update(dict(steps=3, batch_size=32, eval_every=0, checkpoint_every=3, log_every=1,
                     progress=False))
  config.dataset.data_dir = data_dir
  workdir = epath.Path(tmp_path) / 'run'
  common.main(train, config, workdir)
  summary = json.loads((workdir / 'summary.json').read_text())
  assert summary['steps'] == 3
  assert (workdir / 'checkpoints' / '3').is_dir() and (workdir / 'metrics.jsonl').exists()
