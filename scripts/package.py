"""Build the zip that Flex Consumption deploys as it is (no remote build): `make package`.

The zip holds the app (function_app.py, host.json, connector/ and the lock, requirements.txt)
and, installed from that lock, its dependencies in `.python_packages/lib/site-packages`, where
the Functions host on Linux looks for them. Wheels only, for CPython 3.11 on manylinux x86_64
(what Flex Consumption runs), each checked against the lock's hashes, whatever machine builds.

Reproducible: the same lock and sources give the same bytes (with the same zlib) and, in any
case, the same file list and hashes, which `<zip>.files` lists: entries in sorted order, one
fixed timestamp and mode, no console scripts (their first line names the builder's Python), and
bytecode with hash-based invalidation (no source mtimes) so that a read-only package does not
compile every module at each cold start. Prints the zip's size, file count and digests.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import os
import py_compile
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAME = "flux-azdo-connector"
APP_FILES = ("function_app.py", "host.json", "requirements.txt")
APP_PACKAGES = ("connector",)
SITE_PACKAGES = ".python_packages/lib/site-packages"
BUILD_DIR = ROOT / "build" / "package"  # staged tree; azure.yaml deploys it (`dist`)
PYTHON = (3, 11)  # the runtime of infra/main.bicep; bytecode is per minor version
# pip expands only the legacy manylinux names to older ones: list every glibc up to 2.28
# (the lock's target, `make lock`), which Flex Consumption's Linux images satisfy.
PLATFORMS = (
    *(f"manylinux_2_{minor}_x86_64" for minor in range(28, 16, -1)),
    "manylinux2014_x86_64",
)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say; any fixed value would do
FILE_MODE = 0o644
SKIPPED_PARTS = frozenset({"__pycache__"})


def version(root: Path = ROOT) -> str:
    """`__version__` of connector/__init__.py, read without importing the app."""
    text = (root / "connector" / "__init__.py").read_text(encoding="utf-8")
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    if not found:
        raise SystemExit("package: no __version__ in connector/__init__.py")
    return found.group(1)


def app_files(root: Path = ROOT) -> list[Path]:
    """The app's own files, relative to `root`: sources only, no caches."""
    files = [Path(name) for name in APP_FILES]
    for package in APP_PACKAGES:
        files += [
            path.relative_to(root)
            for path in (root / package).rglob("*.py")
            if not SKIPPED_PARTS & set(path.parts)
        ]
    return sorted(files)


def install_dependencies(lock: Path, site: Path) -> None:
    """The lock's wheels for the target platform into `site`, every one checked by hash."""
    platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--require-hashes",
        "--only-binary=:all:",
        *platforms,
        "--python-version",
        "".join(map(str, PYTHON)),
        "--implementation",
        "cp",
        "--abi",
        f"cp{''.join(map(str, PYTHON))}",
        "--no-compile",
        "--target",
        str(site),
        "-r",
        str(lock),
    ]
    subprocess.run(command, check=True)  # noqa: S603 - our interpreter, fixed arguments
    # Console scripts start with the builder's interpreter path; the host never runs them.
    shutil.rmtree(site / "bin", ignore_errors=True)


def compile_bytecode(tree: Path) -> None:
    """Hash-checked .pyc next to every module: valid whatever the files' times, and recorded
    with paths relative to the package (the import system points them at the real file)."""
    if sys.version_info[:2] != PYTHON:
        raise SystemExit(
            f"package: bytecode must be compiled by Python {PYTHON[0]}.{PYTHON[1]} (the deployed"
            f" runtime), not {sys.version_info[0]}.{sys.version_info[1]}"
        )
    ok = compileall.compile_dir(
        tree,
        quiet=1,
        stripdir=str(tree),
        invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        workers=1,  # one process: the same order, and no pool on a shared machine
    )
    if not ok:
        raise SystemExit("package: a module did not compile (see above)")


def tree_files(tree: Path) -> list[str]:
    """Every file under `tree`, as sorted POSIX paths relative to it."""
    return sorted(
        path.relative_to(tree).as_posix()
        for path in tree.rglob("*")
        if path.is_file() and not path.is_symlink()
    )


def write_zip(tree: Path, out: Path) -> list[tuple[str, str, int]]:
    """Zip `tree` into `out` reproducibly; returns (path, sha256, size) per file, sorted."""
    listing = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in tree_files(tree):
            data = (tree / name).read_bytes()
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.create_system = 3  # Unix, so that the mode below is read
            info.external_attr = (0o100000 | FILE_MODE) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=9)
            listing.append((name, hashlib.sha256(data).hexdigest(), len(data)))
    return listing


def digest(listing: Iterable[tuple[str, str, int]]) -> str:
    """One hash of the file list and contents: equal for equal packages, whatever zlib did."""
    lines = "".join(f"{sha}  {name}\n" for name, sha, _ in listing)
    return hashlib.sha256(lines.encode()).hexdigest()


def stage(root: Path, tree: Path, *, dependencies: bool = True, bytecode: bool = True) -> None:
    if tree.exists():
        shutil.rmtree(tree)
    for relative in app_files(root):
        target = tree / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / relative, target)
    if dependencies:
        install_dependencies(root / "requirements.txt", tree / SITE_PACKAGES)
    if bytecode:
        compile_bytecode(tree)


def _sizes(listing: list[tuple[str, str, int]]) -> Iterator[str]:
    site = sum(size for name, _, size in listing if name.startswith(SITE_PACKAGES))
    app = sum(size for name, _, size in listing) - site
    yield f"  unpacked: {_mib(app + site)} ({_mib(app)} app, {_mib(site)} dependencies)"


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, help="the zip (default dist/<name>-<version>.zip)")
    parser.add_argument("--build-dir", type=Path, default=BUILD_DIR)
    parser.add_argument("--no-bytecode", action="store_true", help="leave out the .pyc files")
    args = parser.parse_args()
    out = args.out or ROOT / "dist" / f"{NAME}-{version()}.zip"
    stage(ROOT, args.build_dir, bytecode=not args.no_bytecode)
    listing = write_zip(args.build_dir, out)
    files = out.with_name(out.name + ".files")
    files.write_text("".join(f"{sha}  {name}\n" for name, sha, _ in listing), encoding="utf-8")
    zipped = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}:")
    print(f"  size: {_mib(out.stat().st_size)} ({out.stat().st_size} bytes), {len(listing)} files")
    for line in _sizes(listing):
        print(line)
    print(f"  sha256 of the zip:      {zipped}")
    print(f"  sha256 of its contents: {digest(listing)} (file list and hashes: {files.name})")


if __name__ == "__main__":
    os.umask(0o022)
    main()
