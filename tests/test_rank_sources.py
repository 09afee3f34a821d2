"""experiments.rank_sources: candidate source runs scored on a target task, ranked, and
compared with the accuracies fine-tuning reached."""

import json

import pytest

from conftest import run_stage
from test_transferability import make_run


@pytest.mark.slow   # heavy: the slow tier (`pytest -m slow`)
def test_ranks_sources_and_correlates_with_accuracies(tmp_path, data_dir):
  make_run(tmp_path / 'a', seed=0)
  make_run(tmp_path / 'b', seed=1, num_classes=3)
  out = tmp_path / 'ranked'
  proc = run_stage('rank_sources', f'--workdir={out}',
                   f"--config.sources=('{tmp_path / 'a'}', '{tmp_path / 'b'}')",
                   '--config.accuracies=(0.9, 0.5)', f'--config.dataset.data_dir={data_dir}',
                   check=True)
  summary = json.loads((out / 'summary.json').read_text())
  for score in ('logme', 'leep', 'nce', 'h_score'):
    assert summary[f'{score}/kendall_tau'] in (-1.0, 1.0)
    assert summary[f'{score}/best'] in (str(tmp_path / 'a'), str(tmp_path / 'b'))
  ranking = json.loads((out / 'ranking.json').read_text())
  assert sorted(ranking['logme']) == sorted([str(tmp_path / 'a'), str(tmp_path / 'b')])
  assert "Kendall's tau" in (out / 'report.md').read_text() and 'logme=' in proc.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path, data_dir):
  make_run(tmp_path / 'a')
  one = f"--config.sources=('{tmp_path / 'a'}',)"
  for args, message in [((one, '--config.accuracies=(0.9, 0.5)'), '2 accuracies for 1 sources'),
                        ((f"--config.sources=('{tmp_path / 'nowhere'}',)",), 'does not exist')]:
    proc = run_stage('rank_sources', f'--workdir={tmp_path / "out"}',
                     f'--config.dataset.data_dir={data_dir}', *args)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr[-800:]
    assert not (tmp_path / 'out').exists()
