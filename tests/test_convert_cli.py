"""experiments.convert: a file on disk becomes a run directory every stage takes as its source."""

import json
import os

import numpy as np
import pytest

from conftest import run_stage
from configs import digits_transfer

from tlu.convert import convert
from tlu.train import task
from tlu.transfer import cells
from tlu.transfer.paths import flatten
from tlu.transfer.pretrained import load_pretrained

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')
R18 = os.path.join(FIXTURES, 'resnet18_w2.pth')


def convert_stage(workdir, *args, fmt='torchvision'):
  return run_stage('convert', f'--config=configs/convert.py:{fmt}', f'--workdir={workdir}', *args)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('convert') / 'r18'
  proc = convert_stage(workdir, '--config.arch=resnet18', f'--config.checkpoint={R18}',
                       '--config.model.width=2')
  assert proc.returncode == 0, proc.stderr[-2000:]
  return workdir, proc


def test_run_directory_holds_the_model_its_input_convention_and_the_weights(converted):
  workdir, proc = converted
  assert 'adapted  params/backbone/stem_conv/kernel' in proc.stdout
  assert 'conv1.weight (OIHW->HWIO)' in proc.stdout
  config = json.loads((workdir / 'config.json').read_text())
  assert config['model']['input_mean'] == [0.485, 0.456, 0.406]
  assert config['model']['width'] == 2 and config['num_classes'] == 10
  assert json.loads((workdir / 'convert.json').read_text())['adapted']
  variables, model, step = load_pretrained(str(workdir))
  want = convert('torchvision', R18, 'resnet18', {'width': 2}).variables
  assert step == 0 and model == config['model']
  got, want = flatten(variables), flatten(want)
  assert got.keys() == want.keys()
  for path, value in want.items():
    np.testing.assert_array_equal(got[path], value)
  again = convert_stage(workdir, '--config.arch=resnet18', f'--config.checkpoint={R18}',
                        '--config.model.width=2')
  assert again.returncode == 0 and 'already converted' in again.stdout


def test_transfer_stage_accepts_it_as_its_source(converted, data_dir):
  workdir, _ = converted
  config = digits_transfer.get_config()
  config.source, config.dataset.data_dir, config.adapters = str(workdir), data_dir, ('in_channels',)
  splits = task.task_splits(config.dataset)
  _, model, report = cells.open_source(config, str(workdir), splits)
  assert model['name'] == 'resnet18'
  assert ('params/backbone/stem_conv/kernel', 'params/backbone/stem_conv/kernel',
          'in_channels 3->1') in report.adapted
  assert ('params/head/kernel', 'dont_load') in report.kept_fresh


@pytest.mark.parametrize('args,message', [
    (('--config.arch=resnet50', f'--config.checkpoint={R18}'),
     'lacks layer1.0.bn3.bias'),
    (('--config.arch=resnet18', '--config.checkpoint=TRUNCATED'), 'is truncated'),
    (('--config.arch=resnet18',), 'set --config.checkpoint'),
])   # every other message: tests/test_convert.py
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
  if '--config.checkpoint=TRUNCATED' in args:
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(open(R18, 'rb').read()[:20000])
    args = (args[0], f'--config.checkpoint={cut}')
  proc = convert_stage(tmp_path / 'run', *args)
  assert proc.returncode == 2
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and message in lines[0], proc.stderr[-1000:]
  assert not (tmp_path / 'run').exists()


@pytest.mark.slow   # ResNet compiles: about a minute on 2 CPU cores
def test_converted_resnet18_goes_through_every_transfer_strategy(converted, tmp_path, data_dir):
  workdir, _ = converted
  out = tmp_path / 'transfer'
  proc = run_stage('transfer', f'--workdir={out}', f'--config.source={workdir}',
                   f'--config.dataset.data_dir={data_dir}', "--config.adapters=('in_channels',)",
                   '--config.labels_per_class=(1,)', '--config.seeds=(0,)', '--config.steps=2',
                   '--config.lp_steps=1', '--config.batch_size=8', '--config.eval_batch_size=40',
                   timeout=900, check=True)
  summary = json.loads((out / 'summary.json').read_text())
  for s in digits_transfer.STRATEGIES:
    assert 0.0 <= summary[f'{s}/lpc1/test_accuracy'] <= 1.0
  assert 'in_channels 3->1' in proc.stdout
