"""tlu.data.prepare: the user's files in their own layouts come back as TFDS datasets, exactly.

Every expected value is the array a file was written from (prepare_files), or Pillow's own
decoding / resizing of the file, never the code under test.
"""

import errno
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import prepare_files as files
from tlu.data.prepare import run, writer
from tlu.data.prepare.layout import PrepareError


def prepare(fmt, path, name, data_dir, **kw):
  return run.prepare(fmt, str(path), name, str(data_dir), workers=kw.pop('workers', 1), **kw)


def read(name, data_dir, split):
  source = tfds.data_source(name, split=split, data_dir=str(data_dir))
  return [source[i] for i in range(len(source))]


def listing(data_dir):
  return sorted(os.listdir(data_dir)) if os.path.isdir(data_dir) else []


def test_png_folder_reads_back_pixel_for_pixel_in_sorted_order(tmp_path):
  written = files.digit_folder(tmp_path / 'src')
  (tmp_path / 'src' / 'train' / 'one' / 'notes.txt').write_text('not an image')
  report = prepare('image_folder', tmp_path / 'src', 'digits_png', tmp_path / 'tfds')
  assert report.splits == {'test': 9, 'train': 9} and report.skipped == 1
  info = tfds.builder('digits_png', data_dir=str(tmp_path / 'tfds')).info
  assert info.features['label'].names == ['five', 'one', 'zero']   # sorted folder names
  assert tuple(info.features['image'].shape) == (8, 8, 1)
  for split in ('train', 'test'):
    examples = read('digits_png', tmp_path / 'tfds', split)
    names = [ex['file_name'].decode() for ex in examples]
    assert names == sorted(k for k in written if k.startswith(split))
    for ex, name in zip(examples, names):
      image, label = written[name]
      np.testing.assert_array_equal(ex['image'][..., 0], image)
      assert ['five', 'one', 'zero'][ex['label']] == label


def test_two_preparations_are_the_same_dataset_in_and_out_of_worker_processes(
    tmp_path, monkeypatch):
  files.digit_folder(tmp_path / 'src', per_class=4, splits=('train',))
  kw = dict(validation=3, seed=1)
  prepare('image_folder', tmp_path / 'src', 'a', tmp_path / 'tfds', workers=1, **kw)
  monkeypatch.setattr(writer, 'SHARD_BYTES', 200)   # a shard per one or two examples
  prepare('image_folder', tmp_path / 'src', 'b', tmp_path / 'tfds', workers=2, **kw)
  info = {n: tfds.builder(n, data_dir=str(tmp_path / 'tfds')).info for n in 'ab'}
  assert info['a'].splits['train'].num_shards == 1 and info['b'].splits['train'].num_shards > 4
  assert info['a'].disable_shuffling and info['b'].disable_shuffling
  for split in ('train', 'validation'):
    a, b = read('a', tmp_path / 'tfds', split), read('b', tmp_path / 'tfds', split)
    assert [x['file_name'] for x in a] == [x['file_name'] for x in b]
    for x, y in zip(a, b):
      np.testing.assert_array_equal(x['image'], y['image'])
      assert x['label'] == y['label']
  val = read('a', tmp_path / 'tfds', 'validation')
  assert len(val) == 3 and sorted(x['label'] for x in val) == [0, 1, 2]   # stratified
  names = [x['file_name'] for x in val + read('a', tmp_path / 'tfds', 'train')]
  assert len(set(names)) == 12


def test_photographs_of_several_sizes_and_a_grey_one_are_fitted_as_pillow_fits_them(tmp_path):
  crops = files.photo_crops([(20, 14), (11, 17), (16, 16), (25, 12)])
  crops[3] = np.asarray(Image.fromarray(crops[3]).convert('L'))
  for i, crop in enumerate(crops):
    files.save(crop, str(tmp_path / 'src' / f'{i}.png'))
  files.save(crops[0], str(tmp_path / 'src' / '4.jpg'), quality=90)
  prepare('image_folder', tmp_path / 'src', 'photos', tmp_path / 'tfds', image_size=8,
          channels=3)
  examples = read('photos', tmp_path / 'tfds', 'train')
  assert 'label' not in examples[0]   # a flat folder: unlabelled
  for ex in examples:
    with Image.open(tmp_path / 'src' / ex['file_name'].decode()) as pil:
      pil = pil.convert('RGB')
      scale = 8 / min(pil.size)
      w, h = max(8, round(pil.size[0] * scale)), max(8, round(pil.size[1] * scale))
      want = np.asarray(pil.resize((w, h), Image.BILINEAR))
    top, left = (h - 8) // 2, (w - 8) // 2
    np.testing.assert_array_equal(ex['image'], want[top:top + 8, left:left + 8])


def test_stretched_to_grey_as_pillow_and_rec601_luma_make_them(tmp_path):
  crops = files.photo_crops([(20, 14), (11, 17)])
  for i, crop in enumerate(crops):
    files.save(crop, str(tmp_path / 'src' / f'{i}.png'))
  prepare('image_folder', tmp_path / 'src', 'grey', tmp_path / 'tfds', image_size=8,
          resize='stretch', channels=1)
  for ex in read('grey', tmp_path / 'tfds', 'train'):
    with Image.open(tmp_path / 'src' / ex['file_name'].decode()) as pil:
      rgb = np.asarray(pil.resize((8, 8), Image.BILINEAR), np.float32)
    luma = np.round(rgb @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    np.testing.assert_array_equal(ex['image'][..., 0], luma)


def test_a_jpeg_folder_keeps_pillows_decoding_and_mixed_sizes_are_refused(tmp_path):
  crops = files.photo_crops([(12, 12), (12, 12), (10, 12)])
  for i, crop in enumerate(crops):
    files.save(crop, str(tmp_path / 'src' / 'cls' / f'{i}.jpeg'), quality=80)
  with pytest.raises(PrepareError, match=r'cls/2.jpeg is 10x12x3, the first image cls/0.jpeg '
                                         r'is 12x12x3; set --config.image_size'):
    prepare('image_folder', tmp_path / 'src', 'jpegs', tmp_path / 'tfds')
  assert listing(tmp_path / 'tfds') == []
  os.remove(tmp_path / 'src' / 'cls' / '2.jpeg')
  prepare('image_folder', tmp_path / 'src', 'jpegs', tmp_path / 'tfds')
  for ex in read('jpegs', tmp_path / 'tfds', 'train'):
    with Image.open(tmp_path / 'src' / ex['file_name'].decode()) as pil:
      np.testing.assert_array_equal(ex['image'], np.asarray(pil))


def test_arrays_and_csv_lists(tmp_path):
  images, labels = files.digits(6)
  np.savez(tmp_path / 'd.npz', images=images[..., None], labels=labels)
  np.save(tmp_path / 'd.npy', images)
  prepare('arrays', tmp_path / 'd.npz', 'npz', tmp_path / 'tfds')
  prepare('arrays', tmp_path / 'd.npy', 'npy', tmp_path / 'tfds')
  got = read('npz', tmp_path / 'tfds', 'train')
  np.testing.assert_array_equal(np.stack([x['image'][..., 0] for x in got]), images)
  np.testing.assert_array_equal([x['label'] for x in got], labels)   # integer labels kept
  got = read('npy', tmp_path / 'tfds', 'train')
  assert 'label' not in got[0]
  np.testing.assert_array_equal(np.stack([x['image'][..., 0] for x in got]), images)
  rows = ['path,label,split']
  for i, image in enumerate(images):
    files.save(image, str(tmp_path / 'imgs' / f'{i}.png'))
    rows.append(f'imgs/{i}.png,{"benign" if i % 2 else "malignant"},{"test" if i > 3 else "train"}')
  (tmp_path / 'list.csv').write_text('\n'.join(rows) + '\n')
  prepare('csv', tmp_path / 'list.csv', 'lesions', tmp_path / 'tfds')
  test = read('lesions', tmp_path / 'tfds', 'test')
  np.testing.assert_array_equal(np.stack([x['image'][..., 0] for x in test]), images[4:])
  assert [x['label'] for x in test] == [1, 0]   # names sorted: benign 0, malignant 1


def test_cifar_tarballs_are_the_catalog_datasets(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.integers(0, 256, (14, 32, 32, 3), dtype=np.uint8)
  y = rng.integers(0, 10, 14)
  names = [f'class{i}' for i in range(10)]
  files.cifar_tarball(tmp_path / 'c10.tar.gz', 'cifar10', (x[:10], y[:10]), (x[10:], y[10:]),
                      names)
  report = prepare('cifar10', tmp_path / 'c10.tar.gz', '', tmp_path / 'tfds')
  assert report.name == 'cifar10' and report.splits == {'test': 4, 'train': 10}
  train = read('cifar10', tmp_path / 'tfds', 'train')   # read by the catalog's own builder
  np.testing.assert_array_equal(np.stack([e['image'] for e in train]), x[:10])
  np.testing.assert_array_equal([e['label'] for e in train], y[:10])
  assert train[7]['id'] == b'train_00007'
  assert tfds.builder('cifar10', data_dir=str(tmp_path / 'tfds')).info.features[
      'label'].names == names
  coarse = rng.integers(0, 20, 14)
  files.cifar_tarball(tmp_path / 'c100.tar.gz', 'cifar100', (x[:10], y[:10] * 9),
                      (x[10:], y[10:] * 9), [f'f{i}' for i in range(100)],
                      (coarse[:10], coarse[10:]), [f'c{i}' for i in range(20)])
  prepare('cifar100', tmp_path / 'c100.tar.gz', '', tmp_path / 'tfds')
  test = read('cifar100', tmp_path / 'tfds', 'test')
  np.testing.assert_array_equal(np.stack([e['image'] for e in test]), x[10:])
  np.testing.assert_array_equal([e['label'] for e in test], y[10:] * 9)
  np.testing.assert_array_equal([e['coarse_label'] for e in test], coarse[10:])


def test_mnist_idx_and_svhn_mat_files(tmp_path):
  images, labels = files.digits(7)
  big = np.stack([np.kron(im, np.ones((4, 4), np.uint8))[2:30, 2:30] for im in images])
  (tmp_path / 'mnist').mkdir()
  for stem, sl in (('train', slice(0, 5)), ('t10k', slice(5, 7))):
    files.idx_file(str(tmp_path / 'mnist' / f'{stem}-images-idx3-ubyte.gz'), big[sl], 2051)
    files.idx_file(str(tmp_path / 'mnist' / f'{stem}-labels-idx1-ubyte'), labels[sl], 2049)
  prepare('mnist', tmp_path / 'mnist', '', tmp_path / 'tfds')
  for split, sl in (('train', slice(0, 5)), ('test', slice(5, 7))):
    got = read('mnist', tmp_path / 'tfds', split)   # the catalog's builder reads it
    np.testing.assert_array_equal(np.stack([g['image'][..., 0] for g in got]), big[sl])
    np.testing.assert_array_equal([g['label'] for g in got], labels[sl])
  rgb = np.stack([np.kron(im, np.ones((4, 4), np.uint8)) for im in images])[..., None] * [
      1, 0, 1]
  rgb = rgb.astype(np.uint8)
  (tmp_path / 'svhn').mkdir()
  files.svhn_mat(str(tmp_path / 'svhn' / 'train_32x32.mat'), rgb[:4], labels[:4])
  files.svhn_mat(str(tmp_path / 'svhn' / 'test_32x32.mat'), rgb[4:], labels[4:])
  prepare('svhn', tmp_path / 'svhn', '', tmp_path / 'tfds')
  test = read('svhn_cropped', tmp_path / 'tfds', 'test')
  np.testing.assert_array_equal(np.stack([e['image'] for e in test]), rgb[4:])
  np.testing.assert_array_equal([e['label'] for e in test], labels[4:])   # 10 read as 0


def test_a_full_disk_leaves_nothing_and_an_existing_dataset_untouched(tmp_path, monkeypatch):
  files.digit_folder(tmp_path / 'src', per_class=1, splits=('train',))
  prepare('image_folder', tmp_path / 'src', 'kept', tmp_path / 'tfds')
  before = {p: os.path.getmtime(p) for p in (tmp_path / 'tfds').rglob('*')}
  with pytest.raises(PrepareError, match='exists'):
    prepare('image_folder', tmp_path / 'src', 'kept', tmp_path / 'tfds')
  original = writer._examples

  def full_disk(*args):
    for i, example in enumerate(original(*args)):
      if i == 2:
        raise OSError(errno.ENOSPC, 'No space left on device')
      yield example

  monkeypatch.setattr(writer, '_examples', full_disk)
  with pytest.raises(OSError) as e:
    prepare('image_folder', tmp_path / 'src', 'other', tmp_path / 'tfds')
  assert e.value.errno == errno.ENOSPC
  with pytest.raises(OSError):
    prepare('image_folder', tmp_path / 'src', 'kept', tmp_path / 'tfds', overwrite=True)
  assert listing(tmp_path / 'tfds') == ['kept']
  assert {p: os.path.getmtime(p) for p in (tmp_path / 'tfds').rglob('*')} == before
