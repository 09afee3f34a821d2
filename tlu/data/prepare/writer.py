"""A `Source` written as a TFDS array_record dataset, complete or not at all.

The dataset is built in a temporary sibling of its final place (`<data_dir>/.<name>.
incomplete-<pid>`, used as the TFDS data_dir) and renamed into `<data_dir>/<name>/<version>`
only when every split is written: an error (a corrupt image, a full disk) removes the
temporary directory and everything this preparation created, a kill -9 leaves only that
temporary directory, which the next preparation of the same name removes. Nothing reads it
as a dataset: TFDS finds datasets at `<data_dir>/<name>/<version>`. Renames are atomic on a
local disk (not on gs://; docs/tpu.md).

Examples are written in the sorted source order (`disable_shuffling=True`), streamed
straight into array_record shards of at most `SHARD_BYTES` (`write_split`): TFDS's own
generator path (tfds.core.writer.Writer) keeps every serialized example in memory up to
1 GiB and then sorts them, which a dataset larger than memory cannot afford. Images go
through worker processes in chunks, at most `WINDOW` chunks in flight, so memory does not
grow with the dataset.
"""

import os
import shutil

import numpy as np
import tensorflow_datasets as tfds
from array_record.python import array_record_module
from etils import epath
from tensorflow_datasets.core import registered

from tlu import diskfull
from tlu.data.prepare import decode
from tlu.data.prepare.layout import PrepareError

VERSION = '1.0.0'
CHUNK = 32      # items per round trip to a worker
WINDOW = 8      # chunks in flight per worker
SHARD_BYTES = 512 << 20   # serialized examples per array_record shard (TFDS: 64 MiB - 1 GiB)


def catalog_class(name):
  """The registered TFDS builder class called `name` (catalog or embedded), or None."""
  try:
    return tfds.builder_cls(name)
  except Exception:  # tfds raises DatasetNotFoundError and others for unknown names
    return None


def _features(source, shape, encoding, catalog_cls, scratch):
  if catalog_cls is not None:
    features = catalog_cls(data_dir=os.fspath(scratch)).info.features
    if tuple(features['image'].shape) != tuple(shape):
      raise PrepareError(f'{catalog_cls.name} is a TFDS catalog dataset of '
                         f'{"x".join(map(str, features["image"].shape))} images, these are '
                         f'{"x".join(map(str, shape))}; choose another --config.name')
    for feature, names in {'label': source.label_names, **source.extra_names}.items():
      if names is not None and list(features[feature].names) == [
          str(i) for i in range(features[feature].num_classes)]:
        features[feature].names = list(names)   # the catalog's own names win where it has them
    return features
  features = {'image': tfds.features.Image(shape=tuple(shape), encoding_format=encoding)}
  if source.label_names is not None:
    features['label'] = tfds.features.ClassLabel(names=list(source.label_names))
  if source.file_names:
    features['file_name'] = tfds.features.Text()
  extras = next(iter(source.splits.values())).extras
  for key, values in extras.items():
    features[key] = (tfds.features.ClassLabel(names=list(source.extra_names[key]))
                     if key in source.extra_names else
                     tfds.features.Text() if values.dtype.kind in 'USO' else
                     tfds.features.Tensor(shape=(), dtype=values.dtype))
  return tfds.features.FeaturesDict(features)


def _builder_class(name, version, features, generators, description):
  with registered.skip_registration():

    class Prepared(tfds.core.GeneratorBasedBuilder):  # pylint: disable=abstract-method
      VERSION = tfds.core.Version(version)

      def _info(self):
        return tfds.core.DatasetInfo(
            builder=self, description=description, features=features,
            supervised_keys=('image', 'label') if 'label' in features else None,
            disable_shuffling=True)

      def _split_generators(self, dl_manager):
        raise NotImplementedError   # _download_and_prepare writes the splits itself

      def _generate_examples(self, *args):
        raise NotImplementedError

      def _download_and_prepare(self, dl_manager, download_config):
        del dl_manager, download_config
        self.info.set_splits(tfds.core.SplitDict([
            write_split(self.info.features, generate(),
                        self._get_filename_template(split_name=split))
            for split, generate in generators.items()]))

      def _log_download_bytes(self):   # TFDS prints the temporary directory: the caller
        pass                           # reports the final one

      def _log_download_done(self):
        pass

  Prepared.name = name
  return Prepared


def write_split(features, examples, template):
  """Streams (key, example) in order into array_record shards; returns the SplitInfo.

  A shard is closed once it holds SHARD_BYTES of serialized examples; shards are written
  under temporary names and renamed `<name>-<split>.array_record-0000k-of-0000n` at the end,
  when n is known. Only the example being written is held in memory.
  """
  lengths, sizes, parts, writer = [], [], [], None
  for _, example in examples:
    if writer is None or sizes[-1] >= SHARD_BYTES:
      if writer is not None:
        writer.close()
      parts.append(epath.Path(f'{template.filepath_prefix()}.part{len(parts)}'))
      writer = array_record_module.ArrayRecordWriter(os.fspath(parts[-1]), 'group_size:1')
      lengths.append(0)
      sizes.append(0)
    serialized = features.serialize_example(example)
    writer.write(serialized)
    lengths[-1] += 1
    sizes[-1] += len(serialized)
  if writer is None:
    raise PrepareError(f'split {template.split} is empty')
  writer.close()
  for k, part in enumerate(parts):
    part.rename(template.sharded_filepath(shard_index=k, num_shards=len(parts)))
  return tfds.core.SplitInfo(name=template.split, shard_lengths=lengths, num_bytes=sum(sizes),
                             filename_template=template)


def _examples(source, split_name, options, pool, first, progress):
  """(key, example) of one split in source order; stops at the first bad image.

  first: (stored shape, name) of the first image, which every image must match.
  """
  split = source.splits[split_name]
  positions = split.chosen()
  shape, first_name = first

  def chunks():
    batch = []
    for position, item in zip(positions, split.items(positions)):
      batch.append((item, split.names(position)))
      if len(batch) == CHUNK:
        yield batch
        batch = []
    if batch:
      yield batch

  window = WINDOW * max(getattr(pool, '_processes', 1), 1)
  done = 0
  for results in decode.ordered_map(pool, chunks(), options, window):
    for encoded, got, error in results:
      position = int(positions[done])
      if error:
        raise PrepareError(error)
      if tuple(got) != tuple(shape):
        raise PrepareError(
            f'{split.names(position)} is {"x".join(map(str, got))}, the first image '
            f'{first_name} is {"x".join(map(str, shape))}; set --config.image_size '
            '(and --config.channels) to store every image at one size')
      example = {'image': encoded}
      if split.labels is not None:
        example['label'] = int(split.labels[position])
      if source.file_names:
        example['file_name'] = split.names(position)
      for key, values in split.extras.items():
        value = values[position]
        example[key] = value.item() if isinstance(value, np.generic) else value
      done += 1
      progress.update(1)
      yield position, example


def first_image(source, options):
  """(stored shape, name) of the first item of the first split (every image must match it)."""
  name = next(iter(source.splits))
  split = source.splits[name]
  position = split.chosen()[:1]
  if not len(position):
    raise PrepareError(f'split {name} is empty')
  item = next(iter(split.items(position)))
  what = split.names(int(position[0]))
  _, shape, error = decode.process(item, what, *options)
  if error:
    raise PrepareError(error)
  return tuple(shape), what


def _remove_stale(data_dir, name):
  for stale in data_dir.glob(f'.{name}.incomplete-*'):
    try:
      pid = int(stale.name.rsplit('-', 1)[1])
      if pid != os.getpid():
        os.kill(pid, 0)
        continue          # a preparation of this name is running now
    except ProcessLookupError:
      pass
    except (ValueError, PermissionError):
      continue
    shutil.rmtree(stale, ignore_errors=True)


def _made_dirs(path):
  """Creates `path` and its missing parents; returns those it created, deepest first."""
  missing = []
  while not path.exists():
    missing.append(path)
    path = path.parent
  for p in reversed(missing):
    p.mkdir()
  return missing


def write(source, name, data_dir, options, *, overwrite=False, workers=1, progress=None,
          description=''):
  """Writes `source` as TFDS dataset `name` in `data_dir`; returns its directory.

  options: (image_size, resize, channels, encoding) as `decode.process` takes them.
  progress: total -> a tqdm-like bar (update(n), close()), called once writing starts, or
  None. Raises PrepareError for bad input and tlu.diskfull.DiskFull for a full disk, in
  both cases with nothing left behind and an existing dataset untouched.
  """
  data_dir = epath.Path(data_dir)
  catalog_cls = catalog_class(name)
  if catalog_cls is not None and name not in (source.catalog or ()):
    raise PrepareError(f'{name!r} is the name of a TFDS catalog or tlu dataset; choose another '
                       '--config.name')
  version = str(catalog_cls.VERSION) if catalog_cls is not None else VERSION
  final = data_dir / name / version
  if (final / 'dataset_info.json').exists() and not overwrite:
    raise PrepareError(f'dataset {name} {version} exists in {data_dir}; set '
                       '--config.overwrite=True to replace it')
  first = first_image(source, options)
  try:
    created = _made_dirs(data_dir)
    _remove_stale(data_dir, name)
    scratch = data_dir / f'.{name}.incomplete-{os.getpid()}'
    if scratch.exists():
      shutil.rmtree(scratch)
    scratch.mkdir()
  except OSError as e:
    if diskfull.is_disk_full(e):
      raise diskfull.DiskFull(f'dataset {name}', data_dir) from None
    raise PrepareError(f'data_dir {data_dir} cannot be written ({e.strerror or e})') from None
  pool = bar = None
  try:
    features = _features(source, first[0], encoding=options[3], catalog_cls=catalog_cls,
                         scratch=scratch / 'catalog')
    total = sum(len(s.chosen()) for s in source.splits.values())
    bar = progress(total) if progress is not None else _NoBar()
    pool = decode.start_workers(workers)
    tfds.disable_progress_bar()   # one bar, the caller's, counts images
    generators = {split: (lambda split=split: _examples(source, split, options, pool, first,
                                                        bar))
                  for split in source.splits}
    builder = _builder_class(name, version, features, generators, description)(
        data_dir=os.fspath(scratch))
    builder.download_and_prepare(file_format='array_record',
                                 download_dir=os.fspath(scratch / 'downloads'))
    built = scratch / name / version
    if final.exists():
      final.rename(scratch / 'replaced')
    if not final.parent.exists():
      (scratch / name).rename(final.parent)
    else:
      built.rename(final)
  except BaseException as e:
    shutil.rmtree(scratch, ignore_errors=True)
    for path in created:
      if path.exists() and not any(path.iterdir()):
        path.rmdir()
    if diskfull.is_disk_full(e):
      raise diskfull.DiskFull(f'dataset {name}', data_dir) from None
    raise
  finally:
    if pool is not None:
      pool.terminate()
      pool.join()
    if bar is not None:
      bar.close()
  shutil.rmtree(scratch, ignore_errors=True)
  return final


class _NoBar:

  def update(self, n):
    del n

  def close(self):
    pass
