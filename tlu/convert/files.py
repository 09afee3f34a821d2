"""Checkpoint files from other libraries -> `{key: numpy array}`, without their libraries.

  .pth / .pt / .bin   PyTorch's `torch.save` of a state dict: the zip format (torch >= 1.6)
                      and the older pickle stream; read with a restricted unpickler that
                      only rebuilds tensors and plain containers, so a file can run no code
                      and torch need not be installed.
  .safetensors        Hugging Face's format: an 8-byte header length, a JSON header, raw data.
  .npz                numpy archives of `/`-joined keys (big_vision, vision_transformer).

A truncated, damaged or unrecognised file raises `FileFormatError` saying which and why.
"""

import collections
import io
import json
import os
import pickle
import struct
import zipfile

import ml_dtypes
import numpy as np


class FileFormatError(ValueError):
  """A checkpoint file that cannot be read; the message names the file and the reason."""


# torch storage classes (as pickled) and torch dtypes -> numpy dtypes.
_STORAGES = {
    'DoubleStorage': np.float64, 'FloatStorage': np.float32, 'HalfStorage': np.float16,
    'BFloat16Storage': ml_dtypes.bfloat16, 'LongStorage': np.int64, 'IntStorage': np.int32,
    'ShortStorage': np.int16, 'CharStorage': np.int8, 'ByteStorage': np.uint8,
    'BoolStorage': np.bool_,
}
_SAFETENSORS = {
    'F64': np.float64, 'F32': np.float32, 'F16': np.float16, 'BF16': ml_dtypes.bfloat16,
    'I64': np.int64, 'I32': np.int32, 'I16': np.int16, 'I8': np.int8, 'U8': np.uint8,
    'BOOL': np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_CONTAINERS = {('collections', 'OrderedDict'): collections.OrderedDict,
               ('builtins', 'dict'): dict, ('builtins', 'list'): list,
               ('builtins', 'tuple'): tuple, ('builtins', 'set'): set}


class _NotAStateDict(pickle.UnpicklingError):
  """The pickle holds objects other than tensors and containers."""


class _Storage:
  """A pickled storage reference: which record of the file holds its bytes, and its dtype."""

  def __init__(self, dtype, key, numel):
    self.dtype, self.key, self.numel = np.dtype(dtype), str(key), int(numel)
    self.array = None   # filled from the file's data records


class _Tensor:
  """A tensor to rebuild once its storage is read: a strided view of the storage."""

  def __init__(self, storage, offset, size, stride):
    self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), stride

  def numpy(self):
    data = self.storage.array
    if data is None:
      raise FileFormatError('a tensor refers to storage data that the file does not hold')
    if not self.size:
      return np.array(data[self.offset])
    end = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1
    if self.offset < 0 or end > data.size:
      raise FileFormatError(f'a tensor of shape {self.size} reaches past its storage '
                            f'({data.size} elements): the file is damaged')
    itemsize = data.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        data[self.offset:], self.size, tuple(s * itemsize for s in self.stride))
    return np.array(view)


def _rebuild_tensor(storage, offset, size, stride, *unused):
  return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data, *unused):
  return data


class _TorchUnpickler(pickle.Unpickler):
  """Rebuilds tensors, storages and containers; refuses every other global."""

  def find_class(self, module, name):
    if (module, name) in _CONTAINERS:
      return _CONTAINERS[(module, name)]
    if module == 'torch._utils' and name in ('_rebuild_tensor_v2', '_rebuild_tensor'):
      return _rebuild_tensor
    if module == 'torch._utils' and name == '_rebuild_parameter':
      return _rebuild_parameter
    if module == 'torch' and name in _STORAGES:
      return _STORAGES[name]
    raise _NotAStateDict(
        f'it pickles a {module}.{name}, not only tensors: save model.state_dict() instead')

  def persistent_load(self, pid):
    if not isinstance(pid, tuple) or not pid or pid[0] not in ('storage', b'storage'):
      raise pickle.UnpicklingError(f'unknown persistent id {pid!r:.60}')
    dtype, key, _, numel = pid[1:5]
    key = str(key)
    if key not in self.storages:
      self.storages[key] = _Storage(dtype, key, numel)
    return self.storages[key]


def _unpickle(f, storages):
  unpickler = _TorchUnpickler(f, encoding='utf-8')
  unpickler.storages = storages
  return unpickler.load()


def _materialize(obj):
  """Nested containers of _Tensor -> the same containers of numpy arrays."""
  if isinstance(obj, _Tensor):
    return obj.numpy()
  if isinstance(obj, dict):
    return type(obj)((k, _materialize(v)) for k, v in obj.items())
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialize(v) for v in obj)
  return obj


def _read_torch_zip(path):
  with zipfile.ZipFile(path) as z:
    names = z.namelist()
    pkl = [n for n in names if n.endswith('/data.pkl') or n == 'data.pkl']
    if not pkl:
      raise FileFormatError(f'{path}: a zip file without data.pkl is not a torch.save file')
    root = pkl[0][:-len('data.pkl')]
    byteorder = z.read(root + 'byteorder').decode() if root + 'byteorder' in names else 'little'
    storages = {}
    obj = _unpickle(io.BytesIO(z.read(pkl[0])), storages)
    for s in storages.values():
      raw = z.read(f'{root}data/{s.key}')
      s.array = np.frombuffer(raw, s.dtype, count=s.numel).copy()
      if byteorder != 'little':
        s.array = s.array.byteswap()
  return _materialize(obj)


def _read_torch_legacy(path):
  with open(path, 'rb') as f:
    try:
      magic = pickle.load(f)
    except Exception:  # pylint: disable=broad-except  (any garbage raises something else)
      magic = None
    if magic != _LEGACY_MAGIC:
      raise FileFormatError(f'{path} is not a PyTorch checkpoint (neither a zip archive nor '
                            'the legacy format)')
    pickle.load(f)   # protocol version
    pickle.load(f)   # sys info
    storages = {}
    obj = _unpickle(f, storages)
    keys = pickle.load(f)
    for key in keys:
      s = storages[str(key)]
      (numel,) = struct.unpack('<q', f.read(8))
      raw = f.read(numel * s.dtype.itemsize)
      if len(raw) < numel * s.dtype.itemsize:
        raise EOFError('the storage data ends early')
      s.array = np.frombuffer(raw, s.dtype).copy()
  return _materialize(obj)


def read_torch(path):
  """The object `torch.save` wrote (a state dict: {name: numpy array})."""
  with open(path, 'rb') as f:
    zip_header = f.read(4) == b'PK\x03\x04'
  try:
    if zipfile.is_zipfile(path):
      return _read_torch_zip(path)
    if zip_header:
      raise FileFormatError(f'{path} is truncated: a zip archive (torch.save format) without '
                            'its end')
    return _read_torch_legacy(path)
  except FileFormatError:
    raise
  except _NotAStateDict as e:
    raise FileFormatError(f'{path}: {e}') from None
  except (zipfile.BadZipFile, EOFError, pickle.UnpicklingError, struct.error, KeyError,
          ValueError, TypeError, IndexError, AttributeError, UnicodeDecodeError) as e:
    raise FileFormatError(f'{path} cannot be read as a PyTorch checkpoint: truncated or damaged '
                          f'({type(e).__name__}: {str(e)[:120]})') from None


def read_safetensors(path):
  """{name: numpy array} of a .safetensors file (its `__metadata__` dropped)."""
  size = os.path.getsize(path)
  with open(path, 'rb') as f:
    head = f.read(8)
    if len(head) < 8:
      raise FileFormatError(f'{path} is truncated: {size} bytes, no safetensors header')
    (n,) = struct.unpack('<Q', head)
    if n > size - 8:
      raise FileFormatError(f'{path} is truncated or not a safetensors file: its header says '
                            f'{n} header bytes, the file has {size}')
    try:
      header = json.loads(f.read(n))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise FileFormatError(f'{path} is not a safetensors file (its header is not JSON: '
                            f'{str(e)[:80]})') from None
    header.pop('__metadata__', None)
    data_size = size - 8 - n
    end = max((int(v['data_offsets'][1]) for v in header.values()), default=0)
    if end > data_size:
      raise FileFormatError(f'{path} is truncated: its header needs {end} bytes of tensor data, '
                            f'the file holds {data_size}')
    data = f.read(end)
  out = {}
  for name, info in header.items():
    if info['dtype'] not in _SAFETENSORS:
      raise FileFormatError(f'{path}: tensor {name!r} has dtype {info["dtype"]}, which tlu '
                            'does not convert')
    begin, stop = info['data_offsets']
    out[name] = np.frombuffer(data[begin:stop], _SAFETENSORS[info['dtype']]).reshape(
        info['shape']).copy()
  return out


def read_npz(path):
  """{key: numpy array} of a .npz archive (no pickled objects)."""
  try:
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k] for k in z.files}
  except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as e:
    raise FileFormatError(f'{path} cannot be read as a .npz archive: truncated or damaged '
                          f'({type(e).__name__}: {str(e)[:120]})') from None


READERS = {'.pth': read_torch, '.pt': read_torch, '.bin': read_torch, '.ckpt': read_torch,
           '.safetensors': read_safetensors, '.npz': read_npz}


def read(path):
  """The arrays of a checkpoint file, by its extension (READERS); a torch file's top-level
  wrapper ({'state_dict': ...}, {'model': ...}) and DataParallel's 'module.' prefix removed.

  Returns {name: numpy array}. Raises FileNotFoundError or FileFormatError.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'checkpoint file {path} does not exist')
  ext = os.path.splitext(path)[1].lower()
  if ext not in READERS:
    raise FileFormatError(f'{path}: unknown checkpoint extension {ext!r}; tlu reads '
                          f'{", ".join(sorted(READERS))}')
  obj = READERS[ext](path)
  for wrapper in ('state_dict', 'model', 'model_state', 'params'):
    if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict) and not any(
        isinstance(v, np.ndarray) for v in obj.values()):
      obj = obj[wrapper]
  if not isinstance(obj, dict) or not obj:
    raise FileFormatError(f'{path} holds a {type(obj).__name__}, not a state dict of tensors')
  arrays = {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}
  if len(arrays) != len(obj):
    other = next(k for k, v in obj.items() if not isinstance(v, np.ndarray))
    raise FileFormatError(f'{path}: entry {other!r} is a {type(obj[other]).__name__}, not a '
                          'tensor; save the state dict only')
  if all(k.startswith('module.') for k in arrays):
    arrays = {k[len('module.'):]: v for k, v in arrays.items()}
  return arrays
