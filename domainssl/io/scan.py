"""Archive scan: walk a folder tree, group DICOM files into series, describe every image.

Writes a manifest (JSON lines, one object per image) that training reads instead of the
archive. The scan streams (a bounded number of tasks in flight, records written as they
finish, so memory does not grow with the number of files), runs readers in worker
processes, and survives crashing decoders: a worker that dies takes only its own task down,
which is retried alone and then reported as rejected.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import warnings
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..jsonable import jsonable
from .band_folder import band_files, band_name
from .errors import ImageReadError
from .open import (DICOM_SUFFIXES, NIFTI_SUFFIXES, PLAIN_SUFFIXES, TIFF_SUFFIXES, looks_like_dicom,
                   looks_like_zarr)

# Files that sit beside images and are not images: not scanned, counted as "ignored".
SIDECAR_SUFFIXES = (".json", ".txt", ".md", ".csv", ".xml", ".html", ".htm", ".yaml", ".yml",
                    ".aux.xml", ".ovr", ".py", ".pdf", ".log", ".zip", ".tar", ".gz.md5", ".md5",
                    ".sha256", ".cff", ".jsonl", ".rst")
IMAGE_SUFFIXES = NIFTI_SUFFIXES + TIFF_SUFFIXES + PLAIN_SUFFIXES

MANIFEST_KEYS = ("path", "format", "status", "reason", "shape", "axes", "spacing", "units",
                 "channel_names", "dtype")


@dataclass(frozen=True)
class ScanTask:
    """One unit of work: a single file/zarr (`kind="image"`) or a folder's DICOM files."""

    kind: str  # "image" | "dicom"
    path: str
    files: tuple[str, ...] = ()


@dataclass
class ScanSummary:
    """Counts from one scan; `str()` gives the printed summary."""

    ok: int = 0
    rejected: int = 0
    ignored: int = 0
    by_format: Counter = field(default_factory=Counter)
    by_reason: Counter = field(default_factory=Counter)
    warnings: int = 0
    warning_lines: list = field(default_factory=list)

    # The summary shows the warnings of the first few files; the manifest's `warnings` field has all.
    SHOW_WARNINGS = 5

    def add(self, record: dict) -> None:
        if record["status"] == "ok":
            self.ok += 1
            self.by_format[record["format"]] += 1
            if record.get("warnings"):
                self.warnings += 1
                if self.warnings <= self.SHOW_WARNINGS:
                    path = record["path"]
                    self.warning_lines += [m if m.startswith(path) else f"{path}: {m}"
                                           for m in record["warnings"]]
        else:
            self.rejected += 1
            self.by_format[f"{record['format'] or 'unknown'} (rejected)"] += 1
            self.by_reason[reason_kind(record["reason"])] += 1

    def __str__(self) -> str:
        lines = [f"scan: {self.ok} usable, {self.rejected} rejected, {self.ignored} non-image files "
                 f"ignored, {self.warnings} usable with warnings"]
        if self.by_format:
            lines.append("  by format: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_format.items())))
        for reason, n in self.by_reason.most_common():
            lines.append(f"  rejected {n:5d} x {reason}")
        lines += [f"  warning  {line}" for line in self.warning_lines]
        if self.warnings > self.SHOW_WARNINGS:
            lines.append(f"  ... {self.warnings - self.SHOW_WARNINGS} more files with warnings "
                         f"(the manifest's `warnings` field lists them)")
        return "\n".join(lines)


def reason_kind(reason: str | None) -> str:
    """The reason without its file-specific details, for counting (text before the first ':' or '(')."""
    if not reason:
        return "unknown"
    head = reason.split(":")[0].split("(")[0].strip()
    return head[:80] or reason[:80]


def _is_sidecar(name: str) -> bool:
    low = name.lower()
    return low.startswith(".") or low.endswith(SIDECAR_SUFFIXES) or low in ("license", "readme",
                                                                           "dicomdir")


def iter_tasks(root, counter: ScanSummary | None = None) -> Iterator[ScanTask]:
    """Yield scan tasks for a folder tree, a single file, or a glob pattern, lazily.

    DICOM files are grouped per folder into one task (the worker splits them into series);
    OME-Zarr folders are one image and are not descended into; the band files of a band folder
    (one GeoTIFF per band, `band_folder`) are one image, the folder.
    """
    root = str(root)
    if "://" not in root:
        # Records name absolute paths: a manifest (and a run that trains from it) must still
        # find its images when used from another working directory, e.g. on --resume.
        root = os.path.abspath(root)
    if any(ch in root for ch in "*?["):
        # A glob that matches a scene's band files (scenes/**/*.tif) yields the band folder once,
        # as a folder scan does: file by file each band would be a one-channel image "B1".
        bands_of: dict[str, set[str]] = {}
        for p in sorted(glob.iglob(root, recursive=True)):
            folder = os.path.dirname(os.path.abspath(p))
            if os.path.isfile(p) and band_name(os.path.basename(p)):
                if folder not in bands_of:
                    bands_of[folder] = {os.path.abspath(path) for _, path in band_files(folder)}
                    if bands_of[folder]:
                        yield ScanTask("image", folder)
                if os.path.abspath(p) in bands_of[folder]:
                    continue
            yield from iter_tasks(p, counter)
        return
    if looks_like_zarr(root) or os.path.isfile(root):
        if os.path.isfile(root) and _is_sidecar(os.path.basename(root)):
            if counter:
                counter.ignored += 1
            return
        if os.path.isfile(root) and looks_like_dicom(root) and not root.lower().endswith(IMAGE_SUFFIXES):
            yield ScanTask("dicom", os.path.dirname(root) or ".", (root,))
        else:
            yield ScanTask("image", root)
        return
    if not os.path.isdir(root):
        raise ImageReadError(root, "no such file or folder to scan")
    # Linked folders are followed (an archive assembled from links to several disks is common);
    # each real folder is walked once, so a link back up the tree cannot loop.
    walked = {os.path.realpath(root)}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        zarrs = [d for d in dirnames if looks_like_zarr(os.path.join(dirpath, d))]
        for d in zarrs:
            yield ScanTask("image", os.path.join(dirpath, d))
        keep = []
        for d in dirnames:
            real = os.path.realpath(os.path.join(dirpath, d))
            if d not in zarrs and not d.startswith(".") and real not in walked:
                walked.add(real)
                keep.append(d)
        dirnames[:] = keep
        dicom_files = []
        # one GeoTIFF per band of a scene: the band files are one image, the folder
        bands = {os.path.basename(path) for _, path in band_files(dirpath)} if any(
            band_name(name) for name in filenames) else set()
        if bands:
            yield ScanTask("image", dirpath)
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            if name in bands:
                continue
            if _is_sidecar(name):
                if counter:
                    counter.ignored += 1
            elif name.lower().endswith(IMAGE_SUFFIXES):
                yield ScanTask("image", path)
            elif name.lower().endswith(DICOM_SUFFIXES) or looks_like_dicom(path):
                dicom_files.append(path)
            else:
                yield ScanTask("image", path)  # unknown: the worker rejects it with a reason
        if dicom_files:
            yield ScanTask("dicom", dirpath, tuple(dicom_files))


def _record_ok(image, extra: dict | None = None, caught: list | None = None) -> dict:
    rec = {k: None for k in MANIFEST_KEYS}
    rec.update(image.describe())
    rec.update(status="ok", reason=None)
    meta = image.meta
    rec["meta"] = jsonable({k: meta[k] for k in ("value_unit", "nodata", "crs", "orientation",
                                                     "modality", "spacing_report", "level", "levels")
                                if k in meta}, nonfinite=str)
    rec["nbytes"] = image.nbytes()
    if caught:
        rec["warnings"] = [str(w.message) for w in caught]
    if extra:
        rec.update(extra)
    return rec


def rejected_record(path, reason: str, fmt: str | None = None, **extra) -> dict:
    """A manifest record for an input that cannot be used, with the reason."""
    rec = {k: None for k in MANIFEST_KEYS}
    rec.update(path=str(path), format=fmt, status="rejected", reason=reason, **extra)
    return rec


def _open_and_describe(open_fn: Callable, path, fmt_hint: str | None, extra: dict | None = None) -> dict:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # ResourceWarnings come from the garbage collector finalising other objects (an unclosed
        # file of some earlier work) while this image opens: they say nothing about this file.
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            image = open_fn()
        except ImageReadError as exc:
            return rejected_record(path, exc.reason, fmt_hint, **(extra or {}))
        except Exception as exc:  # a reader bug or a decoder error we did not wrap: still a record
            return rejected_record(path, f"unexpected {type(exc).__name__}: {exc}", fmt_hint,
                                   **(extra or {}))
    try:
        return _record_ok(image, extra, caught)
    finally:
        image.close()


def scan_task(task: ScanTask) -> list[dict]:
    """Describe one task: one record per image (a DICOM folder may give several series).

    Never raises for bad input: any failure becomes a rejected record naming the path.
    """
    try:
        return _scan_task(task)
    except Exception as exc:
        return [rejected_record(task.path, f"unexpected {type(exc).__name__}: {exc}",
                                "dicom" if task.kind == "dicom" else None)]


def _scan_task(task: ScanTask) -> list[dict]:
    from .open import detect_format, open_image

    if task.kind == "image":
        try:
            fmt = detect_format(task.path)
        except ImageReadError as exc:
            return [rejected_record(task.path, exc.reason)]
        if fmt is None:
            return [rejected_record(task.path, "unknown format: not DICOM, NIfTI, GeoTIFF, TIFF, "
                                               "OME-Zarr or PNG/JPEG")]
        return [_open_and_describe(lambda: open_image(task.path), task.path, fmt)]

    from .dicom import index_dicom_files, open_dicom

    records = []
    try:
        series_list, bad = index_dicom_files(list(task.files))
    except Exception as exc:
        return [rejected_record(task.path, f"DICOM indexing failed ({type(exc).__name__}: {exc})", "dicom")]
    for path, reason in bad:
        records.append(rejected_record(path, reason, "dicom"))
    for info in series_list:
        extra = {"series": info.uid, "n_files": len(info.files)}
        records.append(_open_and_describe(lambda: open_dicom(info, series=info.uid), task.path,
                                          "dicom", extra))
    return records


def _run_isolated(task: ScanTask) -> list[dict]:
    """Run one task in its own process; a crash becomes a rejected record."""
    try:
        with ProcessPoolExecutor(max_workers=1) as pool:
            return pool.submit(scan_task, task).result()
    except BrokenProcessPool:
        return [rejected_record(task.path, "reader crashed: the decoder killed its process "
                                "(corrupt file or decoder bug)")]


def run_scan(tasks: Iterable[ScanTask], jobs: int) -> Iterator[list[dict]]:
    """Run tasks with `jobs` worker processes (0 = in this process), yielding record lists as they finish."""
    if jobs <= 0:
        for task in tasks:
            yield scan_task(task)
        return
    tasks = iter(tasks)
    max_in_flight = 4 * jobs
    pool = ProcessPoolExecutor(max_workers=jobs)
    in_flight: dict = {}
    try:
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < max_in_flight:
                task = next(tasks, None)
                if task is None:
                    exhausted = True
                    break
                in_flight[pool.submit(scan_task, task)] = task
            if not in_flight:
                return
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken = []
            for fut in done:
                task = in_flight.pop(fut)
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    broken.append(task)
            if broken:
                # The pool is dead: every task still in flight is retried alone, so only the
                # task whose decoder crashed is rejected.
                broken += list(in_flight.values())
                in_flight.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                for task in broken:
                    yield _run_isolated(task)
                pool = ProcessPoolExecutor(max_workers=jobs)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def scan_archive(root, out, jobs: int | None = None, progress=None) -> ScanSummary:
    """Scan `root` (folder, file or glob) and write the manifest to `out` (JSON lines).

    Args:
        root: archive folder, single file, or glob pattern (`**` allowed).
        out: manifest path; one JSON object per image with at least the keys
            `path, format, status, reason, shape, axes, spacing, channel_names, dtype`
            (plus `units`, `series` for DICOM, `meta`, `nbytes`, `warnings`).
        jobs: worker processes (default: CPU count; 0 runs in this process, no crash isolation).
        progress: optional callable(n_records) called as records arrive.

    Returns:
        The ScanSummary (counts by format and rejection reason).
    """
    summary = ScanSummary()
    if jobs is None:
        jobs = os.cpu_count() or 1
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".partial")
    with open(tmp, "w", encoding="utf-8") as fh:
        for records in run_scan(iter_tasks(root, summary), jobs):
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False, default=_json_default) + "\n")
                summary.add(rec)
            if progress:
                progress(summary.ok + summary.rejected)
    os.replace(tmp, out)  # never leave a half-written manifest under the real name
    return summary


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def read_manifest(path, status: str | None = "ok") -> Iterator[dict]:
    """Stream manifest records (only those with `status`, or all when None)."""
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: not a JSON line ({exc}); rewrite the manifest "
                                 "with `domainssl scan`") from exc
            if status is None or rec.get("status") == status:
                yield rec


def print_progress(n: int, stream=sys.stderr, every: int = 200) -> None:
    """A progress line every `every` records that stays readable in a log file."""
    if n % every == 0:
        print(f"scan: {n} images described", file=stream, flush=True)
