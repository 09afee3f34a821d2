"""Wall time and accuracy of the supervised digits run, as a user launches it.

  python benchmarks/train_digits.py [--repeats 3] [--devices 1]

Runs `python -m experiments.train --config=configs/digits_supervised.py` in a
fresh workdir `repeats` times (the embedded dataset is prepared once before) and
prints one line: median wall time of the whole command, its spread, and the
test accuracies. Goal (issue: foundation): >= 0.97 accuracy in < 60 s on 2 CPU cores.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--devices', type=int, default=1)
  parser.add_argument('--config', default='configs/digits_supervised.py')
  args = parser.parse_args()
  env = {**os.environ, 'PYTHONPATH': ROOT,
         'XLA_FLAGS': f'--xla_force_host_platform_device_count={args.devices}'}
  subprocess.run([sys.executable, '-c', 'from tlu.data import sources; '
                  'sources.open_source("tlu_digits", "train")'], cwd=ROOT, env=env, check=True)
  times, accs = [], []
  with tempfile.TemporaryDirectory() as tmp:
    for i in range(args.repeats):
      workdir = os.path.join(tmp, f'run{i}')
      t0 = time.perf_counter()
      subprocess.run([sys.executable, '-m', 'experiments.train', f'--config={args.config}',
                      f'--workdir={workdir}', '--config.progress=False'], cwd=ROOT, env=env,
                     check=True, capture_output=True)
      times.append(time.perf_counter() - t0)
      with open(os.path.join(workdir, 'summary.json')) as f:
        accs.append(json.load(f)['test_accuracy'])
  print(f'train_digits: median wall {statistics.median(times):.1f} s '
        f'(min {min(times):.1f}, max {max(times):.1f}, n={len(times)}, {os.cpu_count()} cpus, '
        f'{args.devices} device(s)); test accuracy {", ".join(f"{a:.4f}" for a in accs)}; '
        f'goal: >= 0.97 in < 60 s')


if __name__ == '__main__':
  main()
