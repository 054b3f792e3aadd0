#!/usr/bin/env python3
"""Writes the seed corpus of tests/fuzz.rs (small valid files of every format read), committed.

tests/fuzz.rs mutates these files (seeded) and feeds them to the readers; the XML seeds are
the repository's own example files, read from xml/ directly.
"""
import os
import struct
import sys
import zlib

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bad"))
from make import npy, tiff  # noqa: E402


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def png(width, height, bit_depth, colour, rows, interlace=0):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + r for r in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


w, h = 12, 9
grey8 = [bytes((x * 20 + y * 7) % 256 for x in range(w)) for y in range(h)]
write("grey8.png", png(w, h, 8, 0, grey8))
rgba16 = [b"".join(struct.pack(">HHHH", x * 999, y * 777, (x + y) * 555, 65535 if x % 3 else 0) for x in range(w)) for y in range(h)]
write("rgba16.png", png(w, h, 16, 6, rgba16))
grey_alpha8 = [bytes(v for x in range(w) for v in ((x * 30) % 256, 255)) for y in range(h)]
write("grey_alpha8.png", png(w, h, 8, 4, grey_alpha8))
write("grey8.tif", tiff(w, h, strip_bytes=w * h))
write("grey8_missing_strips.tif", tiff(w, h, rows_per_strip=4, strip_bytes=w * 4))
write("float32.tif", tiff(w, h, bits=32, sample_format=3, strip_bytes=w * h * 4))
write("nodata.tif", tiff(w, h, [(42113, 2, 6, b"-9999\0")], strip_bytes=w * h))
write("f4.npy", npy("(3, 4)", "<f4", struct.pack("<12f", *range(12))))
write("u1.npy", npy("(2, 8)", "|u1", bytes(range(16))))
write("f8.npy", npy("(2, 2)", "<f8", struct.pack("<4d", 1.5, -2.0, float("nan"), 4.0)))
write("grey.pfm", b"Pf\n4 3\n-1.0\n" + struct.pack("<12f", *[float(i) for i in range(11)], float("inf")))
write("colour_be.pfm", b"PF\n2 2\n1.0\n" + struct.pack(">12f", *[float(i) for i in range(12)]))
