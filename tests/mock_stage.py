"""Runs `python -m experiments.<stage> ...` with TFDS catalog datasets mocked.

  python tests/mock_stage.py <stage> <num_examples> [flags...]

`tfds.testing.mock_data` serves random examples of the right shapes and dtypes
for any catalog dataset without files, a download or TensorFlow, so the
reproduction configs run their own code path on this CPU machine.
"""

import runpy
import sys

import tensorflow_datasets as tfds


def main():
  stage, num_examples = sys.argv[1], int(sys.argv[2])
  sys.argv = [f'experiments/{stage}.py'] + sys.argv[3:]
  with tfds.testing.mock_data(num_examples=num_examples,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    runpy.run_module(f'experiments.{stage}', run_name='__main__', alter_sys=True)


if __name__ == '__main__':
  main()
