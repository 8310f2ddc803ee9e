"""Window reads of uncompressed, tiled TIFFs straight from the file's tile bytes.

For an uncompressed tiled GeoTIFF a 256² window costs GDAL many small row reads (~0.33 ms for
4 tiles of a 2 GiB file, even with GTIFF_DIRECT_IO). The tile offsets are in the header, so a
window is one `pread` per touched tile of the contiguous rows it needs (full tile width),
viewed as `(rows, tile_w, samples)` (or `(rows, tile_w)` per band when planar) and copied into
the output. `TileIndex.from_file` accepts only layouts whose bytes this reads exactly as GDAL
does, and returns None for anything else (compressed, stripped, odd bit depths, YCbCr, ...):
the caller then keeps its rasterio path.
"""

from __future__ import annotations

import os

import numpy as np

# photometric interpretations whose stored samples GDAL returns unchanged
_PLAIN_PHOTOMETRIC = (1, 2)  # MINISBLACK, RGB


class TileIndex:
    """Tile layout of the first IFD of an uncompressed tiled TIFF, and reads of its windows.

    Plain data plus a file descriptor opened lazily once per process (a forked or unpickled
    copy opens its own), so it can travel to DataLoader workers. Not for concurrent use by
    threads (reads share one buffer), like the reader that owns it.

    Attributes:
        shape: (samples, height, width) of the image in pixels.
        tile: (tile_length, tile_width) in pixels.
        planar: True when band-interleaved (one tile plane per sample).
        dtype: the stored dtype with the file's byte order.
        offsets, counts: (tiles,) int64 file offsets and byte counts in TIFF order (sample plane
            major when planar, then tile row, then tile column); 0 marks a sparse tile.
        fill: (samples,) value a sparse tile reads as per sample (nodata, else 0), as GDAL does.
    """

    def __init__(self, path: str, shape, tile, planar: bool, dtype: np.dtype,
                 offsets: np.ndarray, counts: np.ndarray, fill: np.ndarray):
        self.path = path
        self.shape = tuple(int(v) for v in shape)
        self.tile = tuple(int(v) for v in tile)
        self.planar = bool(planar)
        self.dtype = np.dtype(dtype)
        self.offsets = offsets
        self.counts = counts
        self.fill = fill
        self.tiles_x = -(-self.shape[2] // self.tile[1])
        self.tiles_y = -(-self.shape[1] // self.tile[0])
        self._fd: int | None = None
        self._pid: int | None = None
        self._buf: np.ndarray | None = None  # one tile's bytes, reused by every read

    @classmethod
    def from_file(cls, path: str, shape, dtype, nodata) -> "TileIndex | None":
        """The index of `path`'s first IFD when it can be read directly, else None.

        Args:
            path: a local file.
            shape: (bands, height, width) GDAL reports for it; dtype: its numpy dtype.
            nodata: per-band nodata values GDAL reports (None where unset): sparse tiles read
                as these.
        """
        try:
            import tifffile

            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                byteorder = tif.byteorder
                ok = (page.is_tiled and page.compression == 1 and page.predictor == 1
                      and page.fillorder == 1 and page.imagedepth == 1 and page.tiledepth == 1
                      and page.photometric in _PLAIN_PHOTOMETRIC and page.planarconfig in (1, 2)
                      and page.subsampling in (None, (1, 1)))
                if not ok:
                    return None
                stored = np.dtype(page.dtype).newbyteorder(byteorder)
                bps = page.bitspersample
                samples = page.samplesperpixel
                if (np.dtype(dtype) != stored.newbyteorder("=") or bps != stored.itemsize * 8
                        or (samples, page.imagelength, page.imagewidth) != tuple(shape)):
                    return None
                tile = (page.tilelength, page.tilewidth)
                offsets = np.asarray(page.dataoffsets, dtype=np.int64)
                counts = np.asarray(page.databytecounts, dtype=np.int64)
                planar = page.planarconfig == 2
        except Exception:  # anything tifffile cannot parse stays with GDAL
            return None
        tile_bytes = tile[0] * tile[1] * stored.itemsize * (1 if planar else samples)
        n_tiles = -(-shape[1] // tile[0]) * -(-shape[2] // tile[1]) * (samples if planar else 1)
        sparse = (offsets == 0) | (counts == 0)
        if len(offsets) != n_tiles or len(counts) != n_tiles or np.any(counts[~sparse] != tile_bytes):
            return None
        if np.any(offsets[~sparse] + counts[~sparse] > os.path.getsize(path)):
            return None  # a truncated file: the caller's open-time check reports it
        fill = np.zeros(samples, dtype=stored)
        for i, nd in enumerate(nodata):
            if nd is None:
                continue
            with np.errstate(invalid="ignore", over="ignore"):
                value = np.array(nd).astype(stored)
            if not (value == nd or (np.isnan(nd) and np.isnan(value))):
                if sparse.any():
                    return None  # how GDAL would clamp the fill value is not worth copying
                continue
            fill[i] = value
        return cls(path, shape, tile, planar, stored, offsets, counts, fill)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_fd"] = state["_pid"] = state["_buf"] = None
        return state

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            # a forked worker opens its own descriptor (closing one shared with the parent
            # would close the parent's too)
            self._fd, self._pid = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0)), os.getpid()
        return self._fd

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = self._pid = None

    def read(self, b0: int, b1: int, y0: int, y1: int, x0: int, x1: int, out: np.ndarray) -> None:
        """Copy samples b0..b1-1 (0-based) of rows y0..y1-1, columns x0..x1-1 into `out`,
        shape (b1 - b0, y1 - y0, x1 - x0), any dtype the stored one casts to."""
        if b1 <= b0 or y1 <= y0 or x1 <= x0:
            return
        th, tw = self.tile
        fd = self._file()
        samples = self.shape[0]
        planes = range(b0, b1) if self.planar else (None,)
        for ty in range(y0 // th, (y1 - 1) // th + 1):
            r0, r1 = max(y0 - ty * th, 0), min(y1 - ty * th, th)  # rows within the tile
            oy = ty * th + r0 - y0
            for tx in range(x0 // tw, (x1 - 1) // tw + 1):
                c0, c1 = max(x0 - tx * tw, 0), min(x1 - tx * tw, tw)  # columns within the tile
                ox = tx * tw + c0 - x0
                for plane in planes:
                    index = ty * self.tiles_x + tx
                    width = samples
                    if plane is not None:
                        index += plane * self.tiles_x * self.tiles_y
                        width = 1
                    dst = out[(slice(None) if plane is None else slice(plane - b0, plane - b0 + 1)),
                              oy:oy + r1 - r0, ox:ox + c1 - c0]
                    offset, count = self.offsets[index], self.counts[index]
                    if offset == 0 or count == 0:
                        fills = self.fill[b0:b1] if plane is None else self.fill[plane:plane + 1]
                        dst[...] = fills[:, None, None]
                        continue
                    row_bytes = tw * width * self.dtype.itemsize
                    # only the rows the window needs, whole tile rows: one contiguous read
                    nbytes = (r1 - r0) * row_bytes
                    rows = self._pread(fd, nbytes, int(offset) + r0 * row_bytes, index)
                    rows = rows.view(self.dtype).reshape(r1 - r0, tw, width)
                    part = rows[:, c0:c1, (slice(b0, b1) if plane is None else slice(0, 1))]
                    np.copyto(dst, part.transpose(2, 0, 1))

    def _pread(self, fd: int, nbytes: int, offset: int, index: int) -> np.ndarray:
        """`nbytes` bytes at `offset` as a uint8 view of a reused buffer (valid until the next
        call): reading into one buffer skips allocating (and page-faulting) ~100 KiB per tile,
        ~15% of the read."""
        if self._buf is None or self._buf.size < nbytes:
            self._buf = np.empty(max(nbytes, self.counts.max(initial=0)), dtype=np.uint8)
        buf = self._buf[:nbytes]
        got = os.preadv(fd, [buf], offset) if hasattr(os, "preadv") else _pread_into(fd, buf, offset)
        if got != nbytes:
            raise OSError(f"{self.path}: short read of tile {index} ({got} of {nbytes} bytes)")
        return buf


def _pread_into(fd: int, buf: np.ndarray, offset: int) -> int:
    """os.preadv for platforms without it (one copy more)."""
    data = os.pread(fd, buf.size, offset)
    buf[:len(data)] = np.frombuffer(data, dtype=np.uint8)
    return len(data)
