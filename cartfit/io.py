"""All file reading and writing of cartfit.

Every output is written atomically: into a temporary file (or folder) next to its final place,
renamed onto the final path only when writing finished without error, and removed otherwise.
A crash or a user error therefore never leaves a partial result behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cartfit.errors import CartfitError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "atomic_dir",
    "atomic_path",
    "copy_file",
    "read_bytes",
    "read_text",
    "read_yaml",
    "write_cohort",
    "write_table",
    "write_text",
    "write_yaml",
]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the folder of ``path``; rename it onto ``path`` on success.

    The temporary name does not exist when it is yielded: the block creates it (as a file or a
    folder). If the block raises, whatever it created is removed and ``path`` is untouched.
    The parent folder is created if needed. A path that cannot be written (no permission, a
    file where a folder is expected, and the reverse) raises :class:`CartfitError`.

    Parameters
    ----------
    path
        Final location of the output.

    Yields
    ------
    pathlib.Path
        Where the block must write (same folder, so the final rename is atomic).
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    except OSError as err:
        raise CartfitError(f"{final}: cannot write here ({err.strerror or err})") from None
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to the temporary path for {final}")
        try:
            _commit(tmp, final)
        except OSError as err:
            raise CartfitError(f"{final}: cannot be replaced ({err.strerror or err})") from None
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def _commit(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` onto ``final``; a folder replaces an existing folder in two renames."""
    if final.exists() and tmp.is_dir() != final.is_dir():
        found, wanted = ("a folder", "a file") if final.is_dir() else ("a file", "a folder")
        raise CartfitError(f"{final}: exists and is {found} (expected {wanted} or nothing)")
    if tmp.is_dir() and final.is_dir():
        # A folder cannot be renamed onto a non-empty folder: move the old one aside first.
        old = final.with_name(f".{final.name}.old.{os.getpid()}")
        _remove(old)
        final.rename(old)
        try:
            tmp.rename(final)
        except BaseException:
            old.rename(final)
            raise
        _remove(old)
    else:
        os.replace(tmp, final)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Like :func:`atomic_path` but the temporary folder already exists when yielded."""
    with atomic_path(path) as tmp:
        tmp.mkdir()
        yield tmp


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``df`` as a CSV file (UTF-8, comma, no index) atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_yaml(data: Any, path: str | os.PathLike[str]) -> None:
    """Write ``data`` as block-style YAML (keys in the given order) atomically."""
    write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), path)


def copy_file(source: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Copy the bytes of ``source`` to ``path`` atomically."""
    data = read_bytes(source)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """Read a regular file's bytes; an unreadable path raises :class:`CartfitError`."""
    p = Path(path)
    try:
        return p.read_bytes()
    except IsADirectoryError:
        raise CartfitError(f"{p}: is a folder (expected a file)") from None
    except FileNotFoundError:
        raise CartfitError(f"{p}: no such file") from None
    except OSError as err:
        raise CartfitError(f"{p}: cannot be read ({err.strerror or err})") from None


def read_text(path: str | os.PathLike[str]) -> str:
    """Read a UTF-8 text file (a byte-order mark is dropped); bad bytes raise CartfitError."""
    raw = read_bytes(path)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise CartfitError(
            f"{path}: is not UTF-8 text (byte {err.start}: {raw[err.start : err.start + 1]!r}); "
            "save it as UTF-8"
        ) from None


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file safely; syntax errors raise :class:`CartfitError` with the line."""
    text = read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise CartfitError(f"{path}{where}: invalid YAML ({problem})") from None


def write_cohort(
    out_dir: str | os.PathLike[str],
    observations: pd.DataFrame,
    subjects: pd.DataFrame,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a cohort folder atomically and check it against the data contract.

    ``observations.csv``, ``subjects.csv`` and (when ``meta`` is given) ``cohort.yaml`` are
    written into a temporary folder, which is validated with
    :func:`cartfit.data.load_cohort` and only then renamed onto ``out_dir`` (an existing
    folder is replaced). Invalid content raises :class:`cartfit.errors.ValidationError` and
    leaves ``out_dir`` as it was.

    Parameters
    ----------
    out_dir
        Cohort folder to create or replace.
    observations
        Long table with the columns of DESIGN.md section 2 (``subject, time, analyte, value,
        unit`` and optionally ``lloq, blq``); written without its index.
    subjects
        One row per subject with ``subject`` and ``dose`` (a ``subject`` index is written as a
        column).
    meta
        Content of ``cohort.yaml``; omitted when ``None``.

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    from cartfit.data import load_cohort

    final = Path(out_dir)
    subj = subjects.reset_index() if "subject" not in subjects.columns else subjects
    obs = observations
    if "blq" in obs.columns and obs["blq"].dtype == bool:
        obs = obs.assign(blq=obs["blq"].astype(int))  # the contract spells flags 0/1
    with atomic_dir(final) as tmp:
        obs.to_csv(tmp / "observations.csv", index=False)
        subj.to_csv(tmp / "subjects.csv", index=False)
        if meta is not None:
            (tmp / "cohort.yaml").write_text(
                yaml.safe_dump(dict(meta), sort_keys=False, allow_unicode=True), encoding="utf-8"
            )
        load_cohort(tmp, display_path=final)
    return final
