"""Finding the images under a load root, and reading files safely.

A file's `filename` in the database is its path relative to the load root with POSIX
separators, so `a/img.jpg` and `b/img.jpg` never collide; `path` is the absolute path.

What the loader reads, and what it refuses (issue 15, item 6):

* Symbolic links. A link whose target lies inside the load folder is loaded: its `path` is the
  target's real path, so the worker opens a plain file. A link whose target lies outside the
  folder (`link.jpg -> /etc/passwd`), or that dangles there, is *not followed*: it is still
  listed (its filename is what the user sees), the worker refuses to open it, and the asset is
  recorded as failed with the reason "a symbolic link that leads outside the load folder: not
  followed", like an undecodable file. Links to folders are not descended into (os.walk's
  default). A root given as one image file may itself be a link: the user named it.
  `scan(root, follow_symlinks=True)` follows links out of the folder too (what a
  `--follow-symlinks` option would pass; the CLI has none yet).
* Only regular files are read. `read_regular` checks the file type before it opens the file and
  again on the open descriptor (stat, open with O_NONBLOCK, fstat: S_ISREG), so a FIFO, a
  device (`/dev/zero`) or a socket with an image name is recorded as failed with the reason,
  never read, and never blocks the load; the descriptor check closes the gap between the two.
* Reads are bounded: a file larger than the caller's limit (images: `images.MAX_FILE_BYTES`;
  annotation and metadata files: `TEXT_FILE_MAX_BYTES` here) is reported and not read into
  memory, and no more than the limit is ever read, even from a file that grows meanwhile.
* File names must be storable: a name that is not valid UTF-8 (os.walk hands its bytes over as
  lone surrogates, which PostgreSQL text cannot hold) or longer than `FILENAME_MAX_BYTES` stops
  the load in this scan, before anything is written, with the name's bytes escaped in the
  message. It cannot be skipped and recorded instead: the filename is the asset's identity.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pgsearch.loader.errors import LoadInputError

# Lower-case; matching is case-insensitive (IMG_0001.JPG is an image).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

# assets has UNIQUE (dataset_id, filename): a btree entry holds at most ~2.7 kB, and a longer
# filename would fail the COPY of its batch (a half-committed load), so it is refused here.
FILENAME_MAX_BYTES = 2000

# Annotation and metadata files (a COCO JSON of a large dataset runs to gigabytes; 4 GiB is
# beyond any real one and still keeps a mistaken --annotations /dev/sda-sized file out).
TEXT_FILE_MAX_BYTES = 4 << 30

SYMLINK_OUTSIDE = (
    "a symbolic link that leads outside the load folder: not followed (--follow-symlinks follows it)"
)


@dataclass(frozen=True)
class ScannedFile:
    filename: str  # relative to the load root, POSIX separators
    path: str  # absolute path on this machine


class FileRefused(OSError):
    """A file `read_regular` will not read; str() is the reason (not a regular file, too large,
    a symbolic link it was told not to follow)."""


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def shown_name(name: str) -> str:
    """A path as text that can always be printed: undecodable bytes as \\xNN escapes."""
    try:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that no file system produced (from JSON, say)
        return name.encode("utf-8", "backslashreplace").decode("utf-8")


def name_problem(name: str) -> str | None:
    """Why PostgreSQL text cannot store this file name or path, or None."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "the name is not valid UTF-8 (rename the file, e.g. with convmv, to load it)"
    if size > FILENAME_MAX_BYTES:
        return f"the name is {size} bytes long, over the limit of {FILENAME_MAX_BYTES}"
    return None


def _kind(mode: int) -> str:
    for test, what in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return what
    return "not a regular file"


def read_regular(path: str, limit: int, *, follow_symlinks: bool = True) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them.

    FileRefused when it is not a regular file (FIFO, device, socket, folder), when it is larger
    than `limit`, or, with follow_symlinks=False, when `path` itself is a symbolic link; other
    OSErrors (missing, no permission) as the system raises them."""
    # lstat/stat first: opening a device can have side effects (a tape rewinds, a serial line
    # raises DTR), and a FIFO would block open() until a writer comes.
    st = os.stat(path, follow_symlinks=follow_symlinks)
    if stat.S_ISLNK(st.st_mode):
        raise FileRefused(SYMLINK_OUTSIDE)
    if not stat.S_ISREG(st.st_mode):
        raise FileRefused(f"not a regular file ({_kind(st.st_mode)})")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:  # swapped for a link since the stat
            raise FileRefused(SYMLINK_OUTSIDE) from None
        raise
    with os.fdopen(fd, "rb") as fh:
        # Again on the descriptor: the file may have been swapped since the stat.
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused(f"not a regular file ({_kind(st.st_mode)})")
        if st.st_size > limit:
            raise FileRefused(f"file too large ({_size(st.st_size)}, limit {_size(limit)})")
        data = fh.read(limit + 1)
    if len(data) > limit:  # it grew after the fstat
        raise FileRefused(f"file too large (over the limit of {_size(limit)})")
    return data


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n} bytes"


def read_text(path: str, limit: int = TEXT_FILE_MAX_BYTES) -> str:
    """A regular text file as UTF-8 (a leading BOM dropped); FileRefused / OSError /
    UnicodeDecodeError for the caller to report with its file name."""
    return read_regular(path, limit).decode("utf-8-sig")


def _walk(root: Path) -> Iterator[Path]:
    # Hidden files and folders (.git, .DS_Store, .ipynb_checkpoints) are never dataset images.
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and is_image_name(name):
                yield Path(dirpath) / name


def _inside(real: str, real_root: str) -> bool:
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _target(path: Path, real_root: str, follow_symlinks: bool) -> str:
    """What the worker opens for a listed file: the file itself, the real path of a link that
    stays inside the folder, or the link itself when it leads out (the worker does not follow it)."""
    if not path.is_symlink():
        return str(path)
    real = os.path.realpath(path)
    return real if follow_symlinks or _inside(real, real_root) else str(path)


def _checked(filename: str, path: str) -> ScannedFile:
    for text in (filename, path):
        why = name_problem(text)
        if why is not None:
            raise LoadInputError(f"{shown_name(text)}: {why}; nothing was loaded")
    return ScannedFile(filename, path)


def scan(root: str | os.PathLike[str], *, follow_symlinks: bool = False) -> list[ScannedFile]:
    """The images under `root` (a folder, searched recursively, or one image file), sorted by filename.

    follow_symlinks=True (for a `--follow-symlinks` option) resolves links that lead outside the
    folder too, so they are read; FIFOs and devices stay refused either way. LoadInputError for a
    missing root, or a file name PostgreSQL cannot store (see the module doc)."""
    base = Path(root).expanduser()
    if not os.path.lexists(base):
        raise LoadInputError(f"{shown_name(os.fspath(root))}: no such file or folder")
    base = base.absolute()
    if base.is_file():
        if not is_image_name(base.name):
            raise LoadInputError(
                f"{shown_name(os.fspath(root))}: not an image file name "
                f"(expected one of {', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        # Named by the user: a link is followed, to its real path, which the worker opens.
        return [_checked(base.name, os.path.realpath(base))]
    real_root = os.path.realpath(base)
    files = [
        _checked(p.relative_to(base).as_posix(), _target(p, real_root, follow_symlinks)) for p in _walk(base)
    ]
    files.sort(key=lambda f: f.filename)
    return files
