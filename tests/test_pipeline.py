"""The default experiment's wiring on a tiny config: every stage, the report, and resuming."""

import json
import os

import pytest

from conftest import run_stage

STAGES = ('pretrain', 'cluster', 'label_efficiency/contrastive', 'label_efficiency/supervised',
          'label_efficiency/scratch', 'adapt', 'anomaly')


def _run(workdir, data_dir):
  """The tiny pipeline (with its t-SNE pictures) in workdir, data from the test data dir."""
  return run_stage('pipeline', '--config=configs/pipeline.py:tiny', f'--workdir={workdir}',
                   '--config.tsne=True',
                   *[f'--config.{s}.dataset.data_dir={data_dir}' for s in
                     ('pretrain', 'cluster', 'transfer', 'anomaly')],
                   f'--config.transfer.source_task.dataset.data_dir={data_dir}',
                   f'--config.adapt.source_task.dataset.data_dir={data_dir}',
                   f'--config.adapt.target.data_dir={data_dir}', check=True)


@pytest.fixture(scope='module')
def pipeline(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp('pipeline')
  return workdir, _run(workdir, data_dir)


def test_every_stage_writes_its_summary_and_the_report_has_every_section(pipeline):
  workdir, _ = pipeline
  for stage in STAGES:
    assert os.path.exists(workdir / stage / 'summary.json'), stage
  report = (workdir / 'report.md').read_text()
  for heading in ('## Results', '## 1. Contrastive pretraining', '## 2. k-means',
                  '## 3. Label efficiency', '## 4. Domain adaptation', '## 5. Anomaly detection'):
    assert heading in report
  for curve in ('| contrastive linear probe |', '| supervised digits_m finetune |', '| scratch |'):
    assert curve in report, curve
  for png in ('label_efficiency.png', 'learning_curves.png', 'tsne_adapt_before.png',
              'tsne_adapt_after.png'):
    assert (workdir / png).exists(), png
  summary = json.loads((workdir / 'summary.json').read_text())
  assert 0.0 <= summary['cluster/acc'] <= 1.0 and 0.0 <= summary['adapt/shot'] <= 1.0


def test_second_invocation_resumes_instead_of_recomputing(pipeline, data_dir):
  workdir, _ = pipeline
  before = {s: os.path.getmtime(workdir / s / 'summary.json') for s in STAGES}
  again = _run(workdir, data_dir)
  for s in STAGES:
    assert f'== {s}: done before' in again.stdout
  assert {s: os.path.getmtime(workdir / s / 'summary.json') for s in STAGES} == before


def test_cluster_with_a_missing_features_run_fails_before_compute(tmp_path, data_dir):
  proc = run_stage('cluster', f'--workdir={tmp_path}/w', '--config.features=/no/such/run',
                   f'--config.dataset.data_dir={data_dir}')
  assert proc.returncode == 2 and 'source workdir /no/such/run does not exist' in proc.stderr
  assert not os.path.exists(f'{tmp_path}/w')


def test_a_subset_of_adaptation_methods_fails_before_compute(tmp_path, data_dir):
  # The report compares every method, so leaving one out is refused up front.
  proc = run_stage('pipeline', '--config=configs/pipeline.py:tiny', f'--workdir={tmp_path}/w',
                   *[f'--config.{s}.dataset.data_dir={data_dir}' for s in
                     ('pretrain', 'cluster', 'transfer', 'anomaly')],
                   f'--config.transfer.source_task.dataset.data_dir={data_dir}',
                   f'--config.adapt.source_task.dataset.data_dir={data_dir}',
                   f'--config.adapt.target.data_dir={data_dir}', '--config.adapt.methods=("dann",)')
  assert proc.returncode == 2 and 'the report compares all of' in proc.stderr, proc.stderr
  assert not os.path.exists(f'{tmp_path}/w')
