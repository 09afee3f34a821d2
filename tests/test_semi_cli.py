"""The semi-supervised stage: cells, what each reads, the workdir contract, resume, bad input."""

import json

import numpy as np
import pytest

from configs import mnist_semi
from conftest import read_jsonl, run_stage
from tlu.semisup import cells

TINY = ('--config=configs/mnist_semi.py:tiny',)


@pytest.fixture(scope='module')
def sweep(tmp_path_factory, data_dir):
  work = tmp_path_factory.mktemp('semi') / 'w'
  args = (f'--workdir={work}', *TINY, f'--config.dataset.data_dir={data_dir}')
  first = run_stage('semi', *args, check=True)
  files = sorted(p for p in work.rglob('*') if p.is_file() and p.parent != work)
  stamps = {p: p.stat().st_mtime_ns for p in files}
  again = run_stage('semi', *args, check=True)
  return work, first, (again, stamps)


def test_every_cell_writes_its_summary_and_the_sweep_its_tables(sweep):
  work, first, _ = sweep
  summary = json.load(open(work / 'summary.json'))
  report = (work / 'report.md').read_text()
  for method in ('supervised', 'fixmatch'):
    cell = json.load(open(work / method / 'lpc4_seed0' / 'summary.json'))
    assert cell['labelled'] == 40 and cell['steps'] == 24   # 4 per class of 10 classes
    for metric in ('test_accuracy', 'selected_test_accuracy', 'validation_accuracy'):
      assert summary[f'{method}/lpc4/{metric}'] == cell[metric]
    # The tiny config scores the test split as its validation split: the step chosen is the
    # latest of the best, and the two accuracies agree at every evaluation.
    evals = [r for r in read_jsonl(work / method / 'lpc4_seed0' / 'metrics.jsonl')
             if r['split'] == 'test']
    assert [r['step'] for r in evals] == [12, 24]
    assert all(r['validation_accuracy'] == r['test_accuracy'] for r in evals)
    best = max(evals, key=lambda r: (r['validation_accuracy'], r['step']))
    assert cell['selected_step'] == best['step']
    assert f'| {method} | {100 * cell["test_accuracy"]:.1f} ± 0.0 |' in report
  # FixMatch reads unlabelled images and logs what USB logs; supervised reads none.
  train = [r for r in read_jsonl(work / 'fixmatch' / 'lpc4_seed0' / 'metrics.jsonl')
           if r['split'] == 'train']
  assert {'sup_loss', 'unsup_loss', 'util_ratio'} <= set(train[0])
  assert 'unsup_loss' not in read_jsonl(work / 'supervised' / 'lpc4_seed0' / 'metrics.jsonl')[0]
  assert first.stdout.count('report: ') == 1


def test_every_method_learned_its_few_labels(sweep):
  # 24 SGD steps on 40 labelled 8x8 digits: the supervised loss falls by more than 0.3
  # (2.50 -> 1.71 supervised, 2.42 -> 1.64 FixMatch measured) and the test accuracy is
  # 0.15 above chance (0.1; 0.38 and 0.54 measured).
  work = sweep[0]
  for method in ('supervised', 'fixmatch'):
    cell = work / method / 'lpc4_seed0'
    losses = [r.get('sup_loss', r.get('loss')) for r in read_jsonl(cell / 'metrics.jsonl')
              if r['split'] == 'train']
    assert losses[0] - losses[-1] > 0.3, (method, losses)
    assert json.load(open(cell / 'summary.json'))['test_accuracy'] > 0.25, method


def test_a_rerun_reads_finished_cells_back_and_trains_no_step(sweep):
  work, _, (again, stamps) = sweep
  assert len(stamps) > 10   # each cell's summary, metrics, checkpoint and events files
  assert {p: p.stat().st_mtime_ns for p in stamps} == stamps   # no cell file rewritten
  for method in ('supervised', 'fixmatch'):
    rows = read_jsonl(work / method / 'lpc4_seed0' / 'metrics.jsonl')
    assert [r['step'] for r in rows if r['split'] == 'test'] == [12, 24]   # not appended to
  assert 'report: ' in again.stdout


def test_labelled_examples_are_drawn_per_class_and_seed_and_every_image_is_unlabelled(data_dir):
  config = mnist_semi.get_config('tiny')
  config.dataset.data_dir = data_dir
  splits = cells.open_splits(config)
  labels = np.array([int(e['label']) for e in splits.train])
  draws = {}
  for seed in (0, 1):
    cell = cells.cell_splits(splits, 4, seed)
    drawn = np.array([int(e['label']) for e in cell.train])
    assert np.bincount(drawn, minlength=10).tolist() == [4] * 10
    assert cell.unlabelled is splits.train and len(cell.unlabelled) == len(labels)
    draws[seed] = [e['image'].tobytes() for e in cell.train]
  assert draws[0] != draws[1]


@pytest.mark.parametrize('args, message', [
    (('--config.labels_per_class=(500,)',), 'labels_per_class=500 needs 500'),
    (('--config.methods=("fixmatch","nomethod")',), "method 'nomethod' has no block"),
    (('--config.fixmatch.mu=0',), 'error: fixmatch.mu=0: must be an integer >= 1'),
    (('--config.source=/nonexistent/run',), 'source run /nonexistent/run'),
])
def test_bad_input_is_one_line_and_exit_2_before_anything_is_written(tmp_path, data_dir, args,
                                                                     message):
  work = tmp_path / 'w'
  proc = run_stage('semi', f'--workdir={work}', *TINY, f'--config.dataset.data_dir={data_dir}',
                   *args)
  assert proc.returncode == 2, proc.stderr
  assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
  assert not work.exists()
