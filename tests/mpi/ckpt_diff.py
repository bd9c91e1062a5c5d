#!/usr/bin/env python3
"""tests/mpi/ckpt_diff.py: the largest parameter difference between two tapegrad checkpoints.

usage: ckpt_diff.py A.ckpt B.ckpt
Prints "params=N max_abs=X max_rel=Y" (max_rel: max |a-b| / max(|a|, |b|, 1e-30) over
elements that differ) and exits 1 when the files hold different parameter layouts.
Reads the format documented in optim/checkpoint.c (version 1, little-endian).
"""
import array
import struct
import sys


def read_params(path):
    with open(path, "rb") as f:
        buf = f.read()
    if buf[:8] != b"TAPEGRAD":
        sys.exit("%s: not a tapegrad checkpoint" % path)
    version, dtype, _total, nparams, _has_opt, _meta = struct.unpack_from("<IIQIIQ", buf, 8)
    if version != 1:
        sys.exit("%s: format version %d" % (path, version))
    off = 40
    descs = []
    for _ in range(nparams):
        (nlen,) = struct.unpack_from("<I", buf, off)
        off += 4
        name = buf[off:off + nlen].decode()
        off += nlen
        (ndim,) = struct.unpack_from("<I", buf, off)
        off += 4
        shape = struct.unpack_from("<%dQ" % ndim, buf, off)
        off += 8 * ndim
        numel = 1
        for s in shape:
            numel *= s
        descs.append((name, shape, numel))
    code, size = ("f", 4) if dtype == 0 else ("d", 8)
    params = {}
    for name, shape, numel in descs:
        a = array.array(code)
        a.frombytes(buf[off:off + numel * size])
        off += numel * size
        params[name] = (shape, a)
    return params


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    a, b = read_params(sys.argv[1]), read_params(sys.argv[2])
    if [(k, v[0]) for k, v in a.items()] != [(k, v[0]) for k, v in b.items()]:
        print("layouts differ")
        sys.exit(1)
    max_abs = max_rel = 0.0
    n = 0
    for name in a:
        for x, y in zip(a[name][1], b[name][1]):
            n += 1
            d = abs(x - y)
            if d > 0:
                max_abs = max(max_abs, d)
                max_rel = max(max_rel, d / max(abs(x), abs(y), 1e-30))
    print("params=%d max_abs=%.3g max_rel=%.3g" % (n, max_abs, max_rel))


if __name__ == "__main__":
    main()
