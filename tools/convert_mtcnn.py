#!/usr/bin/python3
"""Converts the MTCNN weights shipped in the PyPI package facenet-pytorch
(MIT licence, Copyright (c) 2019 Timothy Esler) into models/mtcnn.safetensors.

The wheel carries three PyTorch state_dicts, facenet_pytorch/data/pnet.pt,
rnet.pt and onet.pt.  They are read straight out of the wheel (a zip file)
and written as float32 tensors named "<net>.<state_dict key>", for example
pnet.conv1.weight, rnet.dense4.weight, onet.dense6_3.bias, with the shapes
PyTorch uses (conv OIHW, linear (out, in), PReLU (C,)).  Nothing is
re-ordered here: the C loader (src/models/mtcnn.c) turns the dense layers
that follow a feature map into whole-map convolutions itself.

Usage:
  tools/convert_mtcnn.py [--wheel PATH] [--out models/mtcnn.safetensors]

Without --wheel the wheel is fetched with
  python3 -m pip download --no-deps facenet-pytorch==2.6.0 -d TMPDIR
Its SHA-256 must equal WHEEL_SHA256 below (the file on PyPI); the SHA-256 of
each .pt member is written into the safetensors metadata and printed, so it
can be compared with docs/ASSETS-face.md.
"""
import argparse
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import torch
import json
import struct

PACKAGE = "facenet-pytorch"
VERSION = "2.6.0"
WHEEL = "facenet_pytorch-2.6.0-py3-none-any.whl"
WHEEL_SHA256 = "ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca"
MEMBERS = {
    "pnet": "facenet_pytorch/data/pnet.pt",
    "rnet": "facenet_pytorch/data/rnet.pt",
    "onet": "facenet_pytorch/data/onet.pt",
}
# Expected shapes, checked so that a different upstream file is noticed.
SHAPES = {
    "pnet.conv1.weight": (10, 3, 3, 3), "pnet.conv1.bias": (10,), "pnet.prelu1.weight": (10,),
    "pnet.conv2.weight": (16, 10, 3, 3), "pnet.conv2.bias": (16,), "pnet.prelu2.weight": (16,),
    "pnet.conv3.weight": (32, 16, 3, 3), "pnet.conv3.bias": (32,), "pnet.prelu3.weight": (32,),
    "pnet.conv4_1.weight": (2, 32, 1, 1), "pnet.conv4_1.bias": (2,),
    "pnet.conv4_2.weight": (4, 32, 1, 1), "pnet.conv4_2.bias": (4,),
    "rnet.conv1.weight": (28, 3, 3, 3), "rnet.conv1.bias": (28,), "rnet.prelu1.weight": (28,),
    "rnet.conv2.weight": (48, 28, 3, 3), "rnet.conv2.bias": (48,), "rnet.prelu2.weight": (48,),
    "rnet.conv3.weight": (64, 48, 2, 2), "rnet.conv3.bias": (64,), "rnet.prelu3.weight": (64,),
    "rnet.dense4.weight": (128, 576), "rnet.dense4.bias": (128,), "rnet.prelu4.weight": (128,),
    "rnet.dense5_1.weight": (2, 128), "rnet.dense5_1.bias": (2,),
    "rnet.dense5_2.weight": (4, 128), "rnet.dense5_2.bias": (4,),
    "onet.conv1.weight": (32, 3, 3, 3), "onet.conv1.bias": (32,), "onet.prelu1.weight": (32,),
    "onet.conv2.weight": (64, 32, 3, 3), "onet.conv2.bias": (64,), "onet.prelu2.weight": (64,),
    "onet.conv3.weight": (64, 64, 3, 3), "onet.conv3.bias": (64,), "onet.prelu3.weight": (64,),
    "onet.conv4.weight": (128, 64, 2, 2), "onet.conv4.bias": (128,), "onet.prelu4.weight": (128,),
    "onet.dense5.weight": (256, 1152), "onet.dense5.bias": (256,), "onet.prelu5.weight": (256,),
    "onet.dense6_1.weight": (2, 256), "onet.dense6_1.bias": (2,),
    "onet.dense6_2.weight": (4, 256), "onet.dense6_2.bias": (4,),
    "onet.dense6_3.weight": (10, 256), "onet.dense6_3.bias": (10,),
}


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def write_safetensors(path, tensors, meta):
    """Deterministic safetensors file: header keys sorted, data in name order,
    header padded with spaces to a multiple of 8 bytes."""
    header, blobs, off = {"__metadata__": dict(sorted(meta.items()))}, [], 0
    for name in sorted(tensors):
        b = tensors[name].astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def fetch_wheel(tmp):
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           f"{PACKAGE}=={VERSION}", "-d", tmp]
    subprocess.run(cmd, check=True)
    path = os.path.join(tmp, WHEEL)
    if not os.path.exists(path):
        sys.exit(f"convert_mtcnn: pip did not produce {WHEEL} in {tmp}")
    return path


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", help="path of " + WHEEL + " (default: pip download it)")
    ap.add_argument("--out", default=os.path.join(here, "..", "models", "mtcnn.safetensors"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(tmp)
        with open(wheel, "rb") as f:
            wheel_bytes = f.read()
        got = sha256(wheel_bytes)
        if got != WHEEL_SHA256:
            sys.exit(f"convert_mtcnn: {wheel}: SHA-256 {got}, expected {WHEEL_SHA256}")
        tensors, meta = {}, {
            "source": f"PyPI {PACKAGE}=={VERSION} ({WHEEL})",
            "source_sha256": WHEEL_SHA256,
            "license": "MIT, Copyright (c) 2019 Timothy Esler",
            "format": "MTCNN P/R/O-net state_dicts, float32, names <net>.<state_dict key>",
        }
        with zipfile.ZipFile(io.BytesIO(wheel_bytes)) as z:
            for net, member in MEMBERS.items():
                raw = z.read(member)
                meta[f"{net}_pt_sha256"] = sha256(raw)
                sd = torch.load(io.BytesIO(raw), map_location="cpu")
                for k, v in sd.items():
                    tensors[f"{net}.{k}"] = np.ascontiguousarray(v.detach().to(torch.float32).numpy())
                print(f"{member}: {len(sd)} tensors, sha256 {meta[net + '_pt_sha256']}")

    if set(tensors) != set(SHAPES):
        sys.exit("convert_mtcnn: unexpected tensor set: missing %s, extra %s" % (
            sorted(set(SHAPES) - set(tensors)), sorted(set(tensors) - set(SHAPES))))
    for k, shape in SHAPES.items():
        if tensors[k].shape != shape:
            sys.exit(f"convert_mtcnn: {k}: shape {tensors[k].shape}, expected {shape}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_safetensors(args.out, tensors, meta)
    with open(args.out, "rb") as f:
        print(f"wrote {args.out}: {len(tensors)} tensors, "
              f"{sum(t.size for t in tensors.values())} floats, sha256 {sha256(f.read())}")


if __name__ == "__main__":
    main()
