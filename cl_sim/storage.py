"""Where durable files live: a local (or NFS) folder, or any pyarrow filesystem URI — `s3://`,
`gs://`, `hdfs://` — that every node of a cluster reaches.

    files = Files("s3://bucket/cl_sim/store?endpoint_override=host:9000&scheme=http")
    files.write("manifest/k.json", data)      # local: temp file + rename; object store: one PUT
    files.read("manifest/k.json")

Atomicity: a local write goes to a temporary file in the same folder and is renamed into place.
Object stores have no rename, but a single PUT is atomic (readers see the whole object or none),
so there a write is one PUT. The store builds its commit protocol on that: the state blob first,
the manifest (which names the blob's sha256) last, so a listed entry is complete, and readers
verify the blob against the manifest anyway.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Optional

from cl_sim.io import atomic_save_file


def is_uri(root: str | Path) -> bool:
    return "://" in str(root)


class Files:
    def __init__(self, root: str | Path):
        self.uri = is_uri(root)
        if self.uri:
            from pyarrow import fs

            self.fs, base = fs.FileSystem.from_uri(str(root))
            self.base = base.rstrip("/")
            self.fs.create_dir(self.base, recursive=True)
        else:
            self.fs, self.base = None, str(Path(root))
            Path(self.base).mkdir(parents=True, exist_ok=True)

    def _p(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def exists(self, rel: str) -> bool:
        if not self.uri:
            return Path(self._p(rel)).is_file()
        from pyarrow import fs

        return self.fs.get_file_info(self._p(rel)).type == fs.FileType.File

    def read(self, rel: str) -> bytes:
        if not self.uri:
            return Path(self._p(rel)).read_bytes()
        with self.fs.open_input_stream(self._p(rel)) as f:
            return f.read()

    def write(self, rel: str, data: bytes) -> None:
        if not self.uri:
            def write(tmp: str) -> None:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    import os

                    os.fsync(f.fileno())

            atomic_save_file(Path(self._p(rel)), write)
            return
        with self.fs.open_output_stream(self._p(rel)) as f:  # one PUT: atomic visibility
            f.write(data)

    def names(self, folder: str, suffix: str) -> list[str]:
        """Names (without `suffix`) of the files directly in `folder` that end with `suffix`."""
        if not self.uri:
            d = Path(self._p(folder))
            return sorted(p.name[: -len(suffix)] for p in d.glob(f"*{suffix}")) if d.is_dir() else []
        from pyarrow import fs

        infos = self.fs.get_file_info(fs.FileSelector(self._p(folder), allow_not_found=True))
        return sorted(i.base_name[: -len(suffix)] for i in infos
                      if i.type == fs.FileType.File and i.base_name.endswith(suffix))

    def mtime(self, rel: str) -> Optional[float]:
        """Last modification, seconds since the epoch (None when the filesystem does not say)."""
        if not self.uri:
            return Path(self._p(rel)).stat().st_mtime
        info = self.fs.get_file_info(self._p(rel))
        return info.mtime.timestamp() if info.mtime is not None else None

    def delete(self, rel: str) -> None:
        """Remove one file (gone already is fine)."""
        if not self.uri:
            Path(self._p(rel)).unlink(missing_ok=True)
        elif self.exists(rel):
            self.fs.delete_file(self._p(rel))

    def leftovers(self) -> list[str]:
        """Temporary files of interrupted local writes (`folder/.name.tmp`); an object store has
        none: its writes are single PUTs."""
        if self.uri:
            return []
        return sorted(p.relative_to(self.base).as_posix() for p in Path(self.base).glob("*/.*.tmp"))

    def size(self, rel: str) -> Optional[int]:
        if not self.uri:
            return Path(self._p(rel)).stat().st_size
        return self.fs.get_file_info(self._p(rel)).size


def resolve(root: str | Path) -> str:
    """A store location every process agrees on: an absolute folder, or the URI as given."""
    return str(root) if is_uri(root) else str(Path(root).resolve())


def train_storage(root: str | Path, sub: str) -> tuple[str, object]:
    """(storage_path, storage_filesystem) for Ray Train's `RunConfig`, under `root/sub`: a local
    path and None, or the bucket path and its pyarrow filesystem (as Ray documents for S3/GCS)."""
    if not is_uri(root):
        return str(Path(root).resolve() / sub), None
    from pyarrow import fs

    filesystem, base = fs.FileSystem.from_uri(str(root))
    return f"{base.rstrip('/')}/{sub}", filesystem


def remove_train_run(storage: str, filesystem, name: str) -> bool:
    """Delete Ray Train run `name`'s folder under `train_storage`'s path (its checkpoints), locally
    or on the object store. A folder already gone is fine; a folder that cannot be removed (say, no
    delete permission on the bucket) is logged with its path and left, never raised: this runs in a
    `finally` and must not hide the training error it follows. True when nothing is left."""
    path = f"{storage}/{name}"
    try:
        if filesystem is None:
            if Path(path).exists():
                shutil.rmtree(path)
        else:
            from pyarrow import fs

            if filesystem.get_file_info(path).type != fs.FileType.NotFound:
                filesystem.delete_dir(path)
        return True
    except OSError as e:
        logging.getLogger("cl_sim.storage").warning("could not remove the Train checkpoints at %s: %s", path, e)
        return False
