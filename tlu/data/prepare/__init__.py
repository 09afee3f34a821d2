"""Your own data in: image folders, arrays, CSV lists and the original CIFAR / MNIST / SVHN
files, written as TFDS array_record datasets without TensorFlow.

`prepare(format, path, name, data_dir, ...)` (tlu.data.prepare.run) reads the files with the
format registered under `format` (one module each: image_folder, arrays, csv_list, cifar,
mnist_idx, svhn), and writes `<data_dir>/<name>/<version>` through the TFDS builder machinery
(tlu.data.prepare.writer), which every stage then reads as `dataset.name=<name>` like a
catalog dataset. A new format is one module here: a function `read(path) -> layout.Source`
decorated with `@FORMATS.register('<format>')`.
"""

from tlu.registry import Registry

FORMATS = Registry('dataset format', 'tlu.data.prepare')
