"""experiments.prepare on the command line: bad input is one line and exit 2 leaving nothing,
a kill -9 leaves no dataset that reads as complete, and stages train on what it writes."""

import json
import os
import pickle
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

import prepare_files as files
from conftest import ROOT, run_stage


def prepare(fmt, path, name, data_dir, *extra):
  return run_stage('prepare', f'--config=configs/prepare.py:{fmt}', f'--config.path={path}',
                   f'--config.name={name}', f'--config.data_dir={data_dir}',
                   '--config.workers=1', *extra)


def tree(root):
  """{relative path: (size, mtime)} of everything under root."""
  out = {}
  for base, dirs, names in os.walk(root):
    for n in dirs + names:
      p = os.path.join(base, n)
      out[os.path.relpath(p, root)] = (os.path.getsize(p), os.path.getmtime(p))
  return out


@pytest.fixture(scope='module')
def sources(tmp_path_factory):
  """Good and bad inputs, and a data_dir holding one prepared dataset."""
  root = tmp_path_factory.mktemp('sources')
  files.digit_folder(root / 'digits', per_class=2)
  photos = files.photo_crops([(9, 9), (9, 9), (7, 9)])
  for i, p in enumerate(photos):
    files.save(p, str(root / 'mixed' / 'a' / f'{i}.png'))
  for i, p in enumerate(photos[:2]):
    files.save(p, str(root / 'corrupt' / 'a' / f'{i}.png'))
  (root / 'corrupt' / 'a' / '2.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 40)
  files.save(photos[0], str(root / 'empty' / 'a' / '0.png'))
  (root / 'empty' / 'b').mkdir()
  (root / 'empty' / 'b' / 'readme.txt').write_text('no images here')
  with tarfile.open(root / 'wrong.tar.gz', 'w:gz') as tar:
    tar.add(root / 'digits' / 'train' / 'one' / '00.png', 'cifar-10-batches-py/data_batch_1')
  grey = root / 'grey_cifar' / 'cifar-10-batches-py'   # the CIFAR layout, 32x32 grey rows
  grey.mkdir(parents=True)
  for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
    (grey / name).write_bytes(pickle.dumps({b'data': np.zeros((2, 1024), np.uint8),
                                            b'labels': [0, 1]}))
  (grey / 'batches.meta').write_bytes(pickle.dumps({b'label_names': [b'a', b'b']}))
  (root / 'idx').mkdir()
  images, labels = files.digits(2)
  for stem in ('train', 't10k'):
    files.idx_file(str(root / 'idx' / f'{stem}-images-idx3-ubyte'), images, 2049)   # labels'
    files.idx_file(str(root / 'idx' / f'{stem}-labels-idx1-ubyte'), labels, 2049)
  (root / 'missing.csv').write_text('path,label\ndigits/train/one/00.png,1\nnot/there.png,2\n')
  (root / 'columns.csv').write_text('file,label\ndigits/train/one/00.png,1\n')
  (root / 'a_file').write_text('')
  data_dir = root / 'tfds'
  assert prepare('image_folder', root / 'digits', 'digits_png', data_dir).returncode == 0
  return root, data_dir


BAD = [
    ('image_folder', 'nowhere', 'x', 'nowhere does not exist'),
    ('image_folder', 'corrupt', 'x', 'corrupt/a/2.png: not a readable image'),
    ('image_folder', 'empty', 'x', 'class folder .*empty/b holds no images'),
    ('image_folder', 'mixed', 'x', 'a/2.png is 7x9x3, the first image a/0.png is 9x9x3'),
    ('cifar10', 'wrong.tar.gz', '', 'no cifar-10-batches-py/batches.meta'),
    ('cifar10', 'grey_cifar', '', r'data_batch_1: b"data" is not an \(N, 3072\) uint8 array'),
    ('mnist', 'idx', '', r'train-images-idx3-ubyte: magic number 2049, expected 2051'),
    ('csv', 'missing.csv', 'x', r'missing.csv line 3: .*not/there.png does not exist'),
    ('csv', 'columns.csv', 'x', 'needs a header with a path column'),
    ('image_folder', 'digits', 'digits_png', 'dataset digits_png 1.0.0 exists'),
    ('image_folder', 'digits', 'x', 'data_dir .*a_file/tfds cannot be written'),
    ('image_folder', 'digits', 'cifar10', "'cifar10' is the name of a TFDS catalog"),
    ('folders', 'digits', 'x', "unknown format 'folders'"),
]


@pytest.mark.parametrize('fmt,path,name,message', BAD, ids=[b[3][:30] for b in BAD])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(sources, fmt, path, name, message):
  root, data_dir = sources
  before = tree(data_dir)
  target = root / 'a_file' / 'tfds' if 'a_file' in message else data_dir
  proc = prepare(fmt, root / path, name, target)
  assert proc.returncode == 2, proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), proc.stderr
  assert __import__('re').search(message, lines[0]), lines[0]
  assert tree(data_dir) == before   # nothing new, the existing dataset untouched


def test_kill_9_leaves_no_complete_dataset_and_the_rerun_finishes(tmp_path):
  images, _ = files.digits(400)
  for i, image in enumerate(images):
    files.save(np.kron(image, np.ones((4, 4), np.uint8)), str(tmp_path / 'src' / f'{i:03d}.png'))
  data_dir = tmp_path / 'tfds'
  args = [sys.executable, '-m', 'experiments.prepare', '--config=configs/prepare.py:image_folder',
          f'--config.path={tmp_path / "src"}', '--config.name=killed',
          f'--config.data_dir={data_dir}', '--config.workers=2']
  env = {**os.environ, 'PYTHONPATH': ROOT, 'JAX_PLATFORMS': 'cpu'}

  def scratch():
    return [os.path.join(data_dir, n) for n in (os.listdir(data_dir) if data_dir.is_dir() else ())
            if n.startswith('.killed.incomplete')]

  def writing():   # a shard of examples is being written
    return any('.part' in n for d in scratch() for _, _, names in os.walk(d) for n in names)

  for moment in (scratch, writing):   # killed twice: before writing, then while writing
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not moment():
      time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, f'{moment.__name__}: ended before the kill'
    assert not (data_dir / 'killed').exists(), moment.__name__
    with pytest.raises(Exception):   # nothing reads as a dataset
      tfds.data_source('killed', split='train', data_dir=str(data_dir))
  rerun = run_stage('prepare', *args[3:])   # the same command
  assert rerun.returncode == 0, rerun.stderr
  assert sorted(os.listdir(data_dir)) == ['killed']   # the stale temporary directory is gone
  source = tfds.data_source('killed', split='train', data_dir=str(data_dir))
  assert [source[i]['file_name'].decode() for i in range(len(source))] == [
      f'{i:03d}.png' for i in range(400)]
  np.testing.assert_array_equal(source[399]['image'][..., 0],
                                np.kron(images[399], np.ones((4, 4), np.uint8)))


def test_a_stage_trains_on_a_prepared_folder(sources, tmp_path):
  _, data_dir = sources
  proc = run_stage('train', f'--workdir={tmp_path / "run"}', '--config.dataset.name=digits_png',
                   f'--config.dataset.data_dir={data_dir}', '--config.steps=2',
                   '--config.batch_size=4', '--config.eval_batch_size=6', '--config.log_every=1',
                   '--config.eval_every=0', '--config.checkpoint_every=2',
                   '--config.model.widths=(4,)', '--config.model.features=8',
                   '--config.progress=False', check=True)
  summary = json.loads((tmp_path / 'run' / 'summary.json').read_text())
  assert summary['steps'] == 2 and 0 <= summary['test_accuracy'] <= 1, proc.stdout


def test_an_unlabelled_folder_trains_label_free_and_refuses_labelled_readers(tmp_path):
  images, _ = files.digits(16)
  for i, image in enumerate(images):
    files.save(image, str(tmp_path / 'flat' / f'{i:02d}.png'))
  data_dir = tmp_path / 'tfds'
  assert prepare('image_folder', tmp_path / 'flat', 'flat', data_dir).returncode == 0
  args = [f'--workdir={tmp_path / "run"}', '--config=configs/digits_ssl.py:simclr',
          '--config.dataset.name=flat', f'--config.dataset.data_dir={data_dir}',
          '--config.steps=1', '--config.batch_size=8', '--config.log_every=1',
          '--config.checkpoint_every=1', '--config.model.widths=(4,)',
          '--config.method.projector=(8,)', '--config.progress=False']
  refused = run_stage('pretrain', *args)
  assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
  assert ("dataset 'flat' has no labels, and evals few_label_probe, kmeans, knn, "
          'linear_probe, online_probe; online_probe; pixel_baseline read them: turn them off '
          'with --config.evals={} --config.online_probe=False --config.pixel_baseline=False'
          in refused.stderr)
  assert not (tmp_path / 'run').exists()
  run_stage('pretrain', *args, '--config.evals={}', '--config.online_probe=False',
            '--config.pixel_baseline=False', check=True)
  assert json.loads((tmp_path / 'run' / 'summary.json').read_text())['steps'] == 1
