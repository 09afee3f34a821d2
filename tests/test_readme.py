"""The README's example method is the real, tested file, and its commands name real configs."""

import re
from pathlib import Path

from conftest import ROOT


def test_the_write_your_own_method_example_is_tlu_methods_mocov3():
  readme = Path(ROOT, 'README.md').read_text()
  block = readme.split('This is the whole of `tlu/methods/mocov3.py`:\n\n```python\n')[1]
  assert block.split('```')[0] == Path(ROOT, 'tlu', 'methods', 'mocov3.py').read_text()


def test_the_write_your_own_evaluator_example_is_tlu_evaluators_knn():
  readme = Path(ROOT, 'README.md').read_text()
  block = readme.split('This is the whole of\n`tlu/evaluators/knn.py`:\n\n```python\n')[1]
  assert block.split('```')[0] == Path(ROOT, 'tlu', 'evaluators', 'knn.py').read_text()


def test_every_config_file_the_readme_names_exists():
  readme = Path(ROOT, 'README.md').read_text()
  for path in set(re.findall(r'configs/\w+\.py', readme)):
    assert Path(ROOT, path).exists(), path


def test_the_methods_table_names_every_registered_method():
  from tlu import methods  # pylint: disable=import-outside-toplevel
  readme = Path(ROOT, 'README.md').read_text()
  table = readme.split('| self-supervised |')[1].split('\n## ')[0]
  named = set(re.findall(r'`(\w+)`', table))
  assert set(methods.names()) <= named, sorted(set(methods.names()) - named)
