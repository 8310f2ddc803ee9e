"""Index an image archive: which files are usable, which are not and why.

Walks ROOT (a folder tree, a single file, or a quoted glob such as 'data/**/*.tif'), groups
DICOM files into series, opens every image's headers (no pixels) in parallel worker processes
and writes one JSON line per image to the manifest. Corrupt files are reported, not fatal.
Exits 0 when at least one image is usable.

example:
  domainssl scan /data/ct_archive --out ct_manifest.jsonl
  domainssl scan 'scenes/**/*.tif' --out s2.jsonl --jobs 8
"""

from __future__ import annotations

import sys

HELP = "index an archive into a manifest (usable images and rejection reasons)"


def add_arguments(parser) -> None:
    parser.add_argument("root", help="archive folder, file, or quoted glob pattern")
    parser.add_argument("--out", default="manifest.jsonl", help="manifest to write (JSON lines); "
                        "default: %(default)s")
    parser.add_argument("--jobs", type=int, default=None,
                        help="worker processes (default: CPU count; 0 = in-process, no crash isolation)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args) -> int:
    from ..io.errors import ImageReadError
    from ..io.scan import print_progress, scan_archive

    try:
        summary = scan_archive(args.root, args.out, jobs=args.jobs,
                               progress=None if args.quiet else print_progress)
    except ImageReadError as exc:
        print(f"domainssl scan: {exc}", file=sys.stderr)
        return 2
    print(summary)
    print(f"manifest: {args.out}")
    if summary.ok == 0:
        why = ("see the reasons above" if summary.rejected else
               f"{args.root} holds no DICOM, NIfTI, GeoTIFF, TIFF/OME-TIFF, OME-Zarr or PNG/JPEG files")
        print(f"domainssl scan: no usable image found; {why}", file=sys.stderr)
        return 1
    return 0
