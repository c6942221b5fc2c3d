"""NPZ files with fixed zip timestamps, so equal arrays always give equal bytes (np.savez stamps now)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

from labkit.errors import ConfigError

_EPOCH = (1980, 1, 1, 0, 0, 0)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes of an uncompressed-header, deflated NPZ holding `arrays` in key order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            arr = np.asarray(value)
            if arr.dtype == object:
                raise ConfigError(f"NPZ key {key!r}: object arrays are not allowed")
            member = io.BytesIO()
            np.lib.format.write_array(member, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an NPZ file, loaded eagerly (no pickles)."""
    with np.load(Path(path), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
