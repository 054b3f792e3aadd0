#!/usr/bin/env python3
"""Writes the hostile inputs of tests/bad/ (run from anywhere; the files are committed).

Each folder holds files for one role; tests/suite/hostile.rs feeds every file of a folder to
the command of that role and requires a clean failure (exit 1, the file named, no panic):
  image/   --left of `match`       mask/    --left-mask of `match`
  gt/      --gt of `eval`
Hostile XML files live with the other invalid ones, in xml/invalid and xml/invalid-engine.
"""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def write(role, name, data):
    os.makedirs(os.path.join(HERE, role), exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(os.path.join(HERE, role, name), mode) as f:
        f.write(data)


def png(width, height, bit_depth=8, colour=0, body=b"\x00"):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b"")


def tiff(width, height, entries_extra=(), rows_per_strip=None, strip_bytes=16, bits=8, sample_format=1):
    """A little-endian TIFF, one grey band, one strip of `strip_bytes` zeros."""
    rows_per_strip = height if rows_per_strip is None else rows_per_strip
    entries = [
        (256, 4, 1, width),  # ImageWidth, LONG
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, bits),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: BlackIsZero
        (273, 4, 1, 0),  # StripOffsets (patched below)
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, rows_per_strip),  # RowsPerStrip
        (279, 4, 1, strip_bytes),  # StripByteCounts
        (339, 3, 1, sample_format),  # SampleFormat
    ]
    extra_data = b""
    ifd_offset = 8
    n = len(entries) + len(entries_extra)
    data_offset = ifd_offset + 2 + 12 * n + 4
    packed = []
    for tag, kind, count, value in entries + list(entries_extra):
        if isinstance(value, bytes):  # ASCII stored after the IFD
            if len(value) <= 4:
                packed.append(struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0"))
            else:
                packed.append(struct.pack("<HHII", tag, kind, count, data_offset + len(extra_data)))
                extra_data += value
            continue
        if tag == 273:
            value = 0xDEADBEEF  # placeholder
        fmt = "<HHIHH" if kind == 3 else "<HHII"
        packed.append(struct.pack(fmt, tag, kind, count, value, 0) if kind == 3 else struct.pack(fmt, tag, kind, count, value))
    strip_offset = data_offset + len(extra_data)
    packed = [p.replace(struct.pack("<I", 0xDEADBEEF), struct.pack("<I", strip_offset)) for p in packed]
    # IFD entries must be sorted by tag.
    packed.sort(key=lambda p: struct.unpack("<H", p[:2])[0])
    return b"II*\x00" + struct.pack("<I", ifd_offset) + struct.pack("<H", n) + b"".join(packed) + b"\0\0\0\0" + extra_data + b"\0" * strip_bytes


def npy(shape_text, descr="<f4", body=b"\0" * 16):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    header = header.ljust(118) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + body


# Images whose header claims a huge size (issue #16, item 1).
huge_png = png(2**31 - 1, 2**31 - 1)
write("image", "png_header_2g_by_2g.png", huge_png)
write("image", "tiff_single_strip_300000_squared.tif", tiff(300000, 300000))
write("image", "tiff_gdal_nodata_not_a_number.tif", tiff(64, 64, [(42113, 2, 4, b"abc\0")], strip_bytes=64 * 64))
write("image", "png_truncated.png", huge_png[:40])
write("mask", "png_header_2g_by_2g.png", huge_png)
write("mask", "tiff_single_strip_300000_squared.tif", tiff(300000, 300000))
write("mask", "npy_shape_overflows.npy", npy("(4294967296, 4294967296)"))
write("mask", "npy_shape_larger_than_data.npy", npy("(100000, 100000)", "|u1"))
# Ground truth (eval --gt).
write("gt", "npy_shape_overflows.npy", npy("(4294967296, 4294967296)"))
write("gt", "pfm_size_overflows.pfm", b"Pf\n4294967296 4294967296\n-1.0\n" + b"\0" * 16)
write("gt", "pfm_truncated.pfm", b"Pf\n100 100\n-1.0\n" + b"\0" * 16)
write("gt", "tiff_single_strip_300000_squared.tif", tiff(300000, 300000, bits=32, sample_format=3))

