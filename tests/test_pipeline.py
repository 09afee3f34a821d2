"""The default experiment's wiring on a tiny config: every stage, the report, and resuming."""

import json
import os
import re

import pytest

from conftest import run_stage

STAGES = ('pretrain', 'cluster', 'label_efficiency/contrastive', 'label_efficiency/supervised',
          'label_efficiency/scratch', 'adapt', 'anomaly')
DATA_KEYS = ('pretrain.dataset', 'cluster.dataset', 'anomaly.dataset', 'transfer.dataset',
             'transfer_supervised.dataset', 'transfer_scratch.dataset',
             'transfer_supervised.source_task.dataset', 'adapt.source_task.dataset',
             'adapt.target')


def _data(data_dir):
  return [f'--config.{k}.data_dir={data_dir}' for k in DATA_KEYS]


def _run(workdir, data_dir, *extra, check=True):
  """The tiny pipeline (with its t-SNE pictures) in workdir, data from the test data dir.

  Smaller than `:tiny` where only the time changes: the anomaly stage on three normal
  classes (a k-means compile per class), the adaptation scored on 250 source validation
  and 250 target test images (the t-SNE pictures embed them: 500 points instead of 1500).
  """
  return run_stage('pipeline', '--config=configs/pipeline.py:tiny', f'--workdir={workdir}',
                   '--config.tsne=True', '--config.anomaly.dataset.classes=(0, 1, 2)',
                   '--config.adapt.source_task.dataset.eval_split=validation[:250]',
                   '--config.adapt.target.eval_split=test[:250]', *_data(data_dir), *extra,
                   check=check, timeout=600)


@pytest.fixture(scope='module')
def pipeline(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp('pipeline')
  return workdir, _run(workdir, data_dir)


def test_every_stage_writes_its_summary_and_the_report_has_every_section(pipeline):
  workdir, _ = pipeline
  for stage in STAGES:
    assert os.path.exists(workdir / stage / 'summary.json'), stage
  report = (workdir / 'report.md').read_text()
  for heading in ('## Results', '## Label efficiency', '## pretrain', '## cluster', '## adapt',
                  '## anomaly'):
    assert heading in report, heading
  for curve in ('| contrastive linear probe |', '| supervised finetune |', '| scratch |'):
    assert curve in report, curve
  for method in ('source_only', 'dann', 'shot', 'target_oracle'):
    assert f'| {method} |' in report, method
  for png in ('label_efficiency.png', 'learning_curves.png', 'tsne_adapt_before.png',
              'tsne_adapt_after.png'):
    assert (workdir / png).exists(), png
  for picture in re.findall(r'!\[[^]]*\]\(([^)]+)\)', report):   # every linked picture is there
    assert (workdir / picture).exists(), picture
  assert '](tsne.png)' not in report   # a stage's pictures are linked from its sub-workdir


def test_every_number_of_every_summary_is_in_the_report_and_nothing_is_unformatted(pipeline):
  workdir, _ = pipeline
  report = (workdir / 'report.md').read_text()
  assert not re.search(r'\{[A-Za-z_][A-Za-z0-9_]*\}', report), 'an unformatted placeholder'
  summary = json.loads((workdir / 'summary.json').read_text())
  assert summary
  for name, value in summary.items():
    assert 0.0 <= value <= 1.0 and f'{100 * value:.1f}' in report, name
  for stage in ('cluster', 'anomaly'):
    sub = (workdir / stage / 'report.md').read_text()
    assert not re.search(r'\{[A-Za-z_][A-Za-z0-9_]*\}', sub), stage
    for name, value in json.loads((workdir / stage / 'summary.json').read_text()).items():
      assert f'{value:.4f}' in sub, (stage, name)


def test_second_invocation_resumes_instead_of_recomputing(pipeline, data_dir):
  workdir, _ = pipeline
  before = {s: os.path.getmtime(workdir / s / 'summary.json') for s in STAGES}
  again = _run(workdir, data_dir)
  for s in STAGES:
    assert f'== {s}: done before' in again.stdout
  assert {s: os.path.getmtime(workdir / s / 'summary.json') for s in STAGES} == before


def test_a_bad_stage_config_fails_before_compute(tmp_path, data_dir):
  proc = _run(tmp_path / 'w', data_dir, '--config.adapt.methods=("nope",)', check=False)
  assert proc.returncode == 2 and "'nope' has no config block" in proc.stderr, proc.stderr
  assert not os.path.exists(tmp_path / 'w')
