"""Fixtures shared by the data tests."""

import pytest

from domainssl.io.scan import read_manifest, scan_archive


@pytest.fixture(scope="module")
def tile_records(demo_archive, tmp_path_factory):
    """Manifest records of the demo archive's GeoTIFF tiles."""
    out = tmp_path_factory.mktemp("m") / "tiles.jsonl"
    scan_archive(demo_archive["tiles"], out, jobs=0)
    return list(read_manifest(out))
