#!/usr/bin/python3
"""Writes tests/fixtures/face/mtcnn_goldens.json: what facenet-pytorch's own
MTCNN (facenet-pytorch 2.6.0, default settings, CPU, float32) finds on real
photographs that Debian packages ship, for tests/test_face.c.

The photographs are not copied into the repository.  Each test image is a
recipe that both this script and the C test follow exactly (integer
operations only, so the pixels are identical on both sides):

  canvas WIDTH x HEIGHT filled with one grey value, then layers pasted at
  integer offsets (parts outside the canvas are dropped):
    {"photo": NAME}               the decoded photo (8-bit RGB; grey PNGs are
                                  replicated into R, G and B)
    {"photo": NAME, "down2": 1}   the photo halved: each output pixel is
                                  (a + b + c + d + 2) >> 2 of a 2x2 block
    {"lfw": I, "up": K}           face I of scikit-image's lfw_subset.npy
                                  (float64 in [0, 1]), round(v * 255) (half to
                                  even), grey replicated into RGB, each pixel
                                  repeated K x K times
    {"gradient": 1}               R = x*255/(W-1), G = y*255/(H-1),
                                  B = (x+y)*255/(W+H-2) (integer division)

A recipe may carry "opts" (min_face_size, thresholds, factor): facenet-
pytorch's MTCNN is then made with those settings instead of its defaults.

For every image the JSON holds the recipe, the FNV-1a 64-bit hash of the RGB
bytes (so the C test can tell when its JPEG decoder differs from PIL's) and
the faces facenet-pytorch returns, in its order (largest box first): box
[x1, y1, x2, y2], probability and the five landmarks [[x, y] x 5].

Photos come from python3-skimage (astronaut, camera, coins, coffee,
lfw_subset) and python-matplotlib-data (grace_hopper.jpg).

Setup: /usr/bin/python3 -m pip install --break-system-packages --no-deps facenet-pytorch==2.6.0
Usage: tools/make_face_goldens.py [--out tests/fixtures/face/mtcnn_goldens.json]
"""
import argparse
import importlib.metadata
import json
import os
import sys

import numpy as np
import torch
from PIL import Image

SK = "/usr/lib/python3/dist-packages/skimage/data/"
PHOTOS = {
    "astronaut": [SK + "astronaut.png"],
    "camera": [SK + "camera.png"],
    "coins": [SK + "coins.png"],
    "coffee": [SK + "coffee.png"],
    "grace_hopper": ["/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg",
                     "/usr/lib/python3/dist-packages/matplotlib/mpl-data/sample_data/grace_hopper.jpg"],
    "lfw_subset": [SK + "lfw_subset.npy"],
}
PACKAGES = {
    "astronaut": "python3-skimage", "camera": "python3-skimage", "coins": "python3-skimage",
    "coffee": "python3-skimage", "lfw_subset": "python3-skimage",
    "grace_hopper": "python-matplotlib-data",
}


def find(name):
    for p in PHOTOS[name]:
        if os.path.exists(p):
            return p
    sys.exit(f"make_face_goldens: {name} not found in {PHOTOS[name]} (install {PACKAGES[name]})")


_cache = {}


def photo(name):
    if name not in _cache:
        _cache[name] = np.asarray(Image.open(find(name)).convert("RGB"), dtype=np.uint8)
    return _cache[name]


def lfw(i, k):
    a = np.load(find("lfw_subset"))[i]
    g = np.round(a * 255.0).astype(np.uint8)
    g = np.kron(g, np.ones((k, k), dtype=np.uint8))
    return np.repeat(g[:, :, None], 3, axis=2)


def down2(p):
    h, w = p.shape[0] // 2, p.shape[1] // 2
    q = p[:2 * h, :2 * w].astype(np.uint32)
    s = q[0::2, 0::2] + q[0::2, 1::2] + q[1::2, 0::2] + q[1::2, 1::2]
    return ((s + 2) >> 2).astype(np.uint8)


def compose(rec):
    W, H = rec["width"], rec["height"]
    img = np.full((H, W, 3), rec.get("fill", 0), dtype=np.uint8)
    for L in rec["layers"]:
        if "gradient" in L:
            x = np.arange(W, dtype=np.int64)[None, :]
            y = np.arange(H, dtype=np.int64)[:, None]
            img[:, :, 0] = np.broadcast_to(x * 255 // (W - 1), (H, W))
            img[:, :, 1] = np.broadcast_to(y * 255 // (H - 1), (H, W))
            img[:, :, 2] = (x + y) * 255 // (W + H - 2)
            continue
        if "lfw" in L:
            p = lfw(L["lfw"], L.get("up", 1))
        else:
            p = photo(L["photo"])
            if L.get("down2"):
                p = down2(p)
        x0, y0 = L.get("x", 0), L.get("y", 0)
        xa, ya = max(x0, 0), max(y0, 0)
        xb, yb = min(x0 + p.shape[1], W), min(y0 + p.shape[0], H)
        if xb > xa and yb > ya:
            img[ya:yb, xa:xb] = p[ya - y0:yb - y0, xa - x0:xb - x0]
    return img


def fnv1a64(b):
    h = 0xcbf29ce484222325
    for byte in b:
        h ^= byte
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def photo_size(name):
    p = photo(name)
    return p.shape[1], p.shape[0]


def recipes():
    aw, ah = photo_size("astronaut")
    gw, gh = photo_size("grace_hopper")
    cw, ch = photo_size("camera")
    kw, kh = photo_size("coins")
    fw, fh = photo_size("coffee")
    R = [
        {"name": "astronaut", "width": aw, "height": ah, "layers": [{"photo": "astronaut"}]},
        {"name": "grace_hopper", "width": gw, "height": gh, "layers": [{"photo": "grace_hopper"}]},
        {"name": "camera_gray", "width": cw, "height": ch, "layers": [{"photo": "camera"}]},
        # two photographs side by side, the second one halved
        {"name": "two_faces", "width": aw + gw // 2, "height": ah, "fill": 0,
         "layers": [{"photo": "astronaut"},
                    {"photo": "grace_hopper", "down2": 1, "x": aw, "y": (ah - gh // 2) // 2}]},
        # a 1280x720 frame with two faces (also the timing image)
        {"name": "frame720", "width": 1280, "height": 720, "fill": 96,
         "layers": [{"photo": "astronaut", "x": 80, "y": 110},
                    {"photo": "grace_hopper", "x": 700, "y": 60}]},
        # eight LFW faces, tripled, in a 4 x 2 grid: faces touch the borders
        {"name": "lfw_grid", "width": 300, "height": 150, "fill": 0,
         "layers": [{"lfw": i, "up": 3, "x": 75 * (i % 4), "y": 75 * (i // 4)} for i in range(8)]},
        # non-default settings: an upsampled first pyramid level (min face 10
        # -> scale 1.2), and a coarse pyramid with stricter thresholds
        {"name": "lfw_grid_min10", "width": 300, "height": 150, "fill": 0,
         "layers": [{"lfw": i, "up": 3, "x": 75 * (i % 4), "y": 75 * (i // 4)} for i in range(8)],
         "opts": {"min_face_size": 10, "thresholds": [0.6, 0.7, 0.7], "factor": 0.709}},
        {"name": "two_faces_strict", "width": aw + gw // 2, "height": ah, "fill": 0,
         "layers": [{"photo": "astronaut"},
                    {"photo": "grace_hopper", "down2": 1, "x": aw, "y": (ah - gh // 2) // 2}],
         "opts": {"min_face_size": 60, "thresholds": [0.7, 0.8, 0.95], "factor": 0.6}},
        {"name": "coins", "width": kw, "height": kh, "layers": [{"photo": "coins"}]},
        {"name": "coffee", "width": fw, "height": fh, "layers": [{"photo": "coffee"}]},
        {"name": "gradient", "width": 320, "height": 240, "layers": [{"gradient": 1}]},
    ]
    return R


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "face", "mtcnn_goldens.json"))
    args = ap.parse_args()

    from facenet_pytorch import MTCNN
    torch.set_num_threads(2)
    default = MTCNN(keep_all=True, device="cpu")  # defaults: 20, [0.6, 0.7, 0.7], 0.709

    images = []
    for rec in recipes():
        img = compose(rec)
        mtcnn = default
        if "opts" in rec:
            o = rec["opts"]
            mtcnn = MTCNN(keep_all=True, device="cpu", min_face_size=o["min_face_size"],
                          thresholds=o["thresholds"], factor=o["factor"])
        with torch.no_grad():
            boxes, probs, points = mtcnn.detect(Image.fromarray(img), landmarks=True)
        faces = []
        if boxes is not None:
            boxes = np.asarray(boxes, dtype=np.float64)
            probs = np.asarray(probs, dtype=np.float64)
            points = np.asarray(points, dtype=np.float64)
            for b, p, l in zip(boxes, probs, points):
                faces.append({"box": [float(v) for v in b], "prob": float(p),
                              "landmarks": [[float(l[j, 0]), float(l[j, 1])] for j in range(5)]})
        out = dict(rec)
        out["fnv1a64"] = fnv1a64(img.tobytes())
        out["faces"] = faces
        images.append(out)
        print(f"{rec['name']}: {rec['width']}x{rec['height']}, {len(faces)} face(s)" +
              "".join(f"\n  box {np.round(f['box'], 1).tolist()} p {f['prob']:.5f}" for f in faces))

    doc = {
        "generator": "tools/make_face_goldens.py",
        "reference": f"facenet-pytorch {importlib.metadata.version('facenet-pytorch')}"
                     f" MTCNN(keep_all=True).detect(img, landmarks=True), torch {torch.__version__}",
        "settings": {"min_face_size": 20, "thresholds": [0.6, 0.7, 0.7], "factor": 0.709},
        "photos": PHOTOS,
        "packages": PACKAGES,
        "images": images,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
