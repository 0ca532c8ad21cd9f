"""Read PyTorch ``.pth`` state dicts into numpy arrays without importing torch.

Two on-disk formats exist:

- the *legacy* format (``torch.save(..., _use_new_zipfile_serialization=False)`` and everything
  before torch 1.6): five pickles back to back -- magic number, protocol version, sys info,
  the object itself (tensors point at storages through ``persistent_load`` ids), the list of
  storage keys -- followed by each storage's raw bytes in that order, each preceded by its
  element count as a little-endian int64;
- the *zip* format (torch >= 1.6): ``<archive>/data.pkl`` plus one ``<archive>/data/<key>`` file
  of raw bytes per storage.

Only plain data is reconstructed: dicts, lists, tuples, numbers, strings and tensors. Any other
global the pickle asks for is refused, so loading a checkpoint cannot run arbitrary code.
"""

from __future__ import annotations

import collections
import os
import pickle
import struct
import zipfile
from typing import Any, BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class CheckpointError(ValueError):
    """The file is not a PyTorch checkpoint this reader understands."""


class _StorageType:
    def __init__(self, name: str):
        if name not in _STORAGE_DTYPES:
            raise CheckpointError(f"unsupported tensor storage type torch.{name}")
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage whose bytes are filled in later (legacy format) or straight away (zip)."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype = dtype
        self.numel = numel
        self.array: np.ndarray | None = None


class _PendingTensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialise(self) -> np.ndarray:
        base = self.storage.array
        if base is None:
            raise CheckpointError("tensor refers to a storage that was never read")
        n = int(np.prod(self.size)) if self.size else 1
        if n == 0:
            return np.zeros(self.size, dtype=base.dtype)
        last = self.offset + sum((s - 1) * st for s, st in zip(self.size, self.stride))
        if self.offset < 0 or last >= base.size:
            raise CheckpointError("tensor extends past the end of its storage")
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=tuple(st * item for st in self.stride), writeable=False
        )
        return np.array(view, copy=True)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return _PendingTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=None, backward_hooks=None, *_ignored):
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, load_storage):
        super().__init__(file, encoding="utf-8")
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name.endswith("Storage"):
            return _StorageType(name)
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(f"checkpoint needs {module}.{name}, which this reader does not allow") from None

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] in ("storage", b"storage")):
            raise CheckpointError(f"unsupported persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        if view is not None:
            raise CheckpointError("legacy storage views are not supported")
        if not isinstance(storage_type, _StorageType):
            raise CheckpointError(f"unexpected storage type {storage_type!r}")
        return self._load_storage(str(key), storage_type.dtype, int(numel))


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _PendingTensor):
        return obj.materialise()
    if isinstance(obj, dict):
        return type(obj)((k, _materialise(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def _load_legacy(f: BinaryIO) -> Any:
    try:
        magic = pickle.load(f)
        protocol = pickle.load(f)
        pickle.load(f)  # sys_info: endianness and type sizes (little-endian assumed below)
    except Exception as exc:
        raise CheckpointError(f"not a PyTorch checkpoint ({exc})") from exc
    if magic != LEGACY_MAGIC:
        raise CheckpointError("not a PyTorch checkpoint (bad magic number)")
    if protocol != LEGACY_PROTOCOL:
        raise CheckpointError(f"unsupported legacy protocol version {protocol}")

    storages: dict[str, _Storage] = {}

    def load_storage(key: str, dtype: np.dtype, numel: int) -> _Storage:
        if key not in storages:
            storages[key] = _Storage(dtype, numel)
        return storages[key]

    result = _Unpickler(f, load_storage).load()
    keys = pickle.load(f)
    for key in keys:
        st = storages.get(str(key))
        if st is None:
            raise CheckpointError(f"storage {key} is listed but never used")
        header = f.read(8)
        if len(header) != 8:
            raise CheckpointError("truncated checkpoint (storage header)")
        (numel,) = struct.unpack("<q", header)
        nbytes = numel * st.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise CheckpointError("truncated checkpoint (storage data)")
        st.array = np.frombuffer(raw, dtype=st.dtype.newbyteorder("<")).astype(st.dtype, copy=False)
    return _materialise(result)


def _load_zip(path: str) -> Any:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise CheckpointError("zip checkpoint without data.pkl")
        prefix = pkl[: -len("data.pkl")]
        storages: dict[str, _Storage] = {}

        def load_storage(key: str, dtype: np.dtype, numel: int) -> _Storage:
            if key not in storages:
                raw = zf.read(f"{prefix}data/{key}")
                st = _Storage(dtype, numel)
                st.array = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=False)
                storages[key] = st
            return storages[key]

        with zf.open(pkl) as f:
            result = _Unpickler(f, load_storage).load()
    return _materialise(result)


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a PyTorch checkpoint (legacy or zip format) as ``{name: numpy array}``."""
    path = os.fspath(path)
    if zipfile.is_zipfile(path):
        obj = _load_zip(path)
    else:
        with open(path, "rb") as f:
            obj = _load_legacy(f)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}, not a state dict")
    out = {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if not out:
        raise CheckpointError("checkpoint holds no tensors")
    return out
