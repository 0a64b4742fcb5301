"""accelsync's own code as a zip for Spark executors (`--py-files`, `SparkContext.addPyFile`).

The zip holds the installed `accelsync` package, sources only, and is named by a hash of its
contents: built once per code version, and a changed package never reuses an old zip's name
(Spark refuses a file added twice under one name with other contents).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import accelsync


def package_files() -> list[tuple[str, bytes]]:
    """(name inside the zip, contents) of every source file of the installed package, sorted."""
    root = Path(accelsync.__file__).parent
    files = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files.append((str(Path("accelsync") / path.relative_to(root)), path.read_bytes()))
    return files


def build_zip(folder: str | Path) -> Path:
    """The package's zip in `folder` (built when missing); returns its path."""
    files = package_files()
    digest = hashlib.sha256()
    for name, data in files:
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    target = Path(folder) / f"accelsync-{accelsync.__version__}-{digest.hexdigest()[:12]}.zip"
    if target.exists():
        return target
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # same bytes every build
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".zip.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(target)
    return target


def default_folder() -> Path:
    from accelsync.runs import home

    return home() / "spark"


if __name__ == "__main__":  # python -m accelsync.engine.spark_code FOLDER: build it ahead (e.g. in an image)
    import sys

    print(build_zip(sys.argv[1] if len(sys.argv) > 1 else default_folder()))
