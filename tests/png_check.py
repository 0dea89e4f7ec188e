#!/usr/bin/env python3
"""Decodes PNG files with the standard library only (no PIL): every chunk's CRC, IHDR, the
inflated image data's size (height rows of 1 filter byte + width * bytes per pixel), the filter
types, and that the picture is not one flat colour. Exit 1 naming the file and problem.

  tests/png_check.py FILE.png [MIN_WIDTH MIN_HEIGHT]"""
import struct
import sys
import zlib

CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def check(path, min_w=100, min_h=100):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return "not a PNG signature"
    pos, idat, ihdr, seen_end = 8, b"", None, False
    while pos < len(data):
        if pos + 8 > len(data):
            return f"truncated chunk header at byte {pos}"
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if len(body) != n or pos + 12 + n > len(data):
            return f"truncated {kind!r} chunk at byte {pos}"
        crc = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            return f"bad CRC in {kind!r} chunk at byte {pos}"
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            seen_end = True
            break
        pos += 12 + n
    if ihdr is None or not seen_end:
        return "missing IHDR or IEND"
    w, h, depth, ctype, _, _, interlace = ihdr
    if w < min_w or h < min_h:
        return f"picture is only {w} x {h}"
    if depth != 8 or ctype not in CHANNELS or interlace != 0:
        return f"unexpected format (depth {depth}, colour type {ctype}, interlace {interlace})"
    raw = zlib.decompress(idat)
    stride = w * CHANNELS[ctype]
    if len(raw) != h * (1 + stride):
        return f"image data inflates to {len(raw)} bytes, expected {h * (1 + stride)}"
    if any(raw[r * (1 + stride)] > 4 for r in range(h)):
        return "invalid row filter type"
    if len(set(raw[1 + r * (1 + stride):(r + 1) * (1 + stride)] for r in range(0, h, max(1, h // 50)))) < 3:
        return "the picture is (nearly) empty: all sampled rows are alike"
    return None


def main():
    path = sys.argv[1]
    dims = [int(v) for v in sys.argv[2:4]] or [100, 100]
    err = check(path, *dims)
    if err:
        print(f"{path}: {err}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
