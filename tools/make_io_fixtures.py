#!/usr/bin/python3
"""Writes the small fixture files of tests/test_safetensors.c and
tests/test_image.c into tests/fixtures/io/.

  safetensors: py_dtypes.safetensors written by the Python `safetensors`
    package (several dtypes, a scalar, an empty tensor, metadata) and
    py_dtypes.f32: every tensor converted to float32 by PyTorch, concatenated
    in sorted-name order (raw little-endian).
  PNG: PIL-written RGB/RGBA/gray/palette images plus PNGs built here byte by
    byte for what PIL cannot write (16-bit RGB, gray+alpha, 1/2/4-bit gray
    and palette, Adam7 interlace, every filter type).  Each X.png has X.ppm
    with the expected 8-bit RGB pixels (alpha dropped, 16-bit -> high byte).
  JPEG: baseline 4:2:0, 4:4:4, progressive, grayscale and Adobe CMYK files
    written by PIL; X.ppm holds PIL's decoded RGB (libjpeg-turbo, like ours).
  resize_WxH.f32: torch.nn.functional.interpolate(bilinear,
    align_corners=False) of rgb8.png as float32 HWC.
  to_tensor.f32: torchvision to_tensor + normalize(ImageNet mean/std) of
    rgb8.png, as float32 HWC.
  config.yaml / config.json: a YAML config and PyYAML's reading of it
    (yaml.safe_load, dumped as JSON) for tests/test_config.c.

Usage: tools/make_io_fixtures.py [--check-safetensors FILE]
  --check-safetensors FILE: load FILE with safetensors.torch.load_file and
  print its tensors (used to confirm that files written by dcl open in Python).
"""
import os
import struct
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "io")
W, H = 32, 24


def out(name):
    return os.path.join(OUT, name)


def write_ppm(name, rgb):
    rgb = np.asarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    with open(out(name), "wb") as f:
        f.write(b"P6\n%d %d\n255\n" % (w, h))
        f.write(rgb.tobytes())


# ---------------------------------------------------------------- safetensors

def make_safetensors():
    import torch
    from safetensors.torch import save_file

    specials = [0.0, -0.0, 0.5, -2.0, 3.25, 1024.0, 2.0 ** -24, 2.0 ** -14, 65504.0,
                float("inf"), float("-inf"), 1.0 / 3.0, 1e-3]
    tensors = {
        "a.f32": torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5 - 1.0,
        "b.f16": torch.tensor(specials, dtype=torch.float16),
        "c.bf16": torch.tensor(specials + [3.0e38, 1.0e-38], dtype=torch.bfloat16),
        "d.f64": torch.tensor([[1.0 / 3.0, -1e300], [1e-300, 2.5]], dtype=torch.float64),
        "e.i64": torch.tensor([0, -5, 123456789], dtype=torch.int64),
        "f.i32": torch.tensor([[7], [-8]], dtype=torch.int32),
        "g.u8": torch.tensor([0, 1, 255], dtype=torch.uint8),
        "h.i8": torch.tensor([-128, 127], dtype=torch.int8),
        "i.bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5, dtype=torch.float32),
        "empty": torch.zeros(0, 4, dtype=torch.float32),
        "x.nchw": torch.linspace(-1, 1, 2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2),
    }
    save_file(tensors, out("py_dtypes.safetensors"), metadata={"format": "pt", "note": "dcl fixture"})
    os.chmod(out("py_dtypes.safetensors"), 0o644)
    with open(out("py_dtypes.f32"), "wb") as f:
        for name in sorted(tensors):
            f.write(tensors[name].to(torch.float32).contiguous().numpy().astype("<f4").tobytes())


def check_safetensors(path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    t = load_file(path)
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    for k in sorted(t):
        v = t[k]
        print("%s %s %s %s" % (k, str(v.dtype).replace("torch.", ""), list(v.shape),
                               v.flatten()[:4].tolist()))
    print("metadata", meta)


# ------------------------------------------------------------------------ PNG

def png_chunk(tag, data):
    c = struct.pack(">I", len(data)) + tag + data
    return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_rows(rows, bpp, first_filter=0):
    """rows: list of bytes (packed scanlines); uses filter (first+i) % 5."""
    outb = bytearray()
    prev = bytes(len(rows[0])) if rows else b""
    for i, row in enumerate(rows):
        ft = (first_filter + i) % 5
        f = bytearray()
        for x in range(len(row)):
            a = row[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][ft]
            f.append((row[x] - pred) & 0xFF)
        outb.append(ft)
        outb += f
        prev = row
    return bytes(outb)


def pack_row(samples, depth):
    """samples: 1-D int array of one scanline's samples."""
    if depth == 16:
        return np.asarray(samples, dtype=">u2").tobytes()
    if depth == 8:
        return np.asarray(samples, dtype=np.uint8).tobytes()
    per = 8 // depth
    outb = bytearray()
    for i in range(0, len(samples), per):
        v = 0
        chunk = list(samples[i:i + per]) + [0] * (per - len(samples[i:i + per]))
        for s in chunk:
            v = (v << depth) | int(s)
        outb.append(v)
    return bytes(outb)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def write_png(name, samples, depth, ctype, palette=None, trns=None, interlace=False):
    """samples: (H, W, channels) ints for the PNG's own colour type."""
    h, w, ch = samples.shape
    bpp = max(1, ch * depth // 8)
    if not interlace:
        rows = [pack_row(samples[y].reshape(-1), depth) for y in range(h)]
        raw = filter_rows(rows, bpp)
    else:
        raw = b""
        for p, (x0, y0, dx, dy) in enumerate(ADAM7):
            sub = samples[y0::dy, x0::dx]
            if sub.shape[0] == 0 or sub.shape[1] == 0:
                continue
            rows = [pack_row(sub[y].reshape(-1), depth) for y in range(sub.shape[0])]
            raw += filter_rows(rows, bpp, first_filter=p)
    data = b"\x89PNG\r\n\x1a\n"
    data += png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 1 if interlace else 0))
    if palette is not None:
        data += png_chunk(b"PLTE", bytes(np.asarray(palette, dtype=np.uint8).reshape(-1)))
    if trns is not None:
        data += png_chunk(b"tRNS", bytes(trns))
    comp = zlib.compress(raw, 9)
    # split the image data across two IDAT chunks
    half = len(comp) // 2
    data += png_chunk(b"IDAT", comp[:half]) + png_chunk(b"IDAT", comp[half:])
    data += png_chunk(b"IEND", b"")
    with open(out(name), "wb") as f:
        f.write(data)


def base_rgb():
    y, x = np.mgrid[0:H, 0:W]
    r = (x * 255 // (W - 1))
    g = (y * 255 // (H - 1))
    b = ((x * 7 + y * 13) * 5) % 256
    img = np.stack([r, g, b], axis=-1).astype(np.uint8)
    rng = np.random.RandomState(0)
    img[4:12, 6:18] = rng.randint(0, 256, size=(8, 12, 3))  # a noisy patch
    return img


def make_pngs():
    from PIL import Image

    rgb = base_rgb()
    rng = np.random.RandomState(1)

    Image.fromarray(rgb, "RGB").save(out("rgb8.png"))
    write_ppm("rgb8.ppm", rgb)

    alpha = rng.randint(0, 256, size=(H, W, 1)).astype(np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], -1), "RGBA").save(out("rgba8.png"))
    write_ppm("rgba8.ppm", rgb)

    gray = ((rgb[..., 0].astype(int) + rgb[..., 2]) // 2).astype(np.uint8)
    Image.fromarray(gray, "L").save(out("gray8.png"))
    write_ppm("gray8.ppm", np.repeat(gray[..., None], 3, -1))

    pim = Image.fromarray(rgb, "RGB").quantize(colors=37)
    pim.info["transparency"] = 3
    pim.save(out("pal8.png"), transparency=3)
    write_ppm("pal8.ppm", np.asarray(Image.open(out("pal8.png")).convert("RGB")))

    # 16-bit gray and RGB: expected = high byte
    g16 = rng.randint(0, 65536, size=(H, W, 1))
    write_png("gray16.png", g16, 16, 0)
    write_ppm("gray16.ppm", np.repeat((g16 >> 8).astype(np.uint8), 3, -1))
    rgb16 = rng.randint(0, 65536, size=(H, W, 3))
    write_png("rgb16.png", rgb16, 16, 2)
    write_ppm("rgb16.ppm", (rgb16 >> 8).astype(np.uint8))
    # 16-bit RGBA, interlaced
    rgba16 = rng.randint(0, 65536, size=(H, W, 4))
    write_png("rgba16_adam7.png", rgba16, 16, 6, interlace=True)
    write_ppm("rgba16_adam7.ppm", (rgba16[..., :3] >> 8).astype(np.uint8))

    # gray + alpha
    ga = np.concatenate([gray[..., None], alpha], -1).astype(int)
    write_png("graya8.png", ga, 8, 4)
    write_ppm("graya8.ppm", np.repeat(gray[..., None], 3, -1))

    # low bit depth gray: 1, 2, 4 bits; expanded by bit replication (v * 255 / max)
    for d in (1, 2, 4):
        v = rng.randint(0, 1 << d, size=(H, W, 1))
        write_png("gray%d.png" % d, v, d, 0)
        write_ppm("gray%d.ppm" % d, np.repeat((v * 255 // ((1 << d) - 1)).astype(np.uint8), 3, -1))

    # 4-bit palette with tRNS, interlaced
    pal = rng.randint(0, 256, size=(16, 3))
    idx = rng.randint(0, 16, size=(H, W, 1))
    write_png("pal4_adam7.png", idx, 4, 3, palette=pal, trns=[0, 128, 255], interlace=True)
    write_ppm("pal4_adam7.ppm", pal[idx[..., 0]].astype(np.uint8))

    # 8-bit RGB, interlaced
    write_png("rgb8_adam7.png", rgb.astype(int), 8, 2, interlace=True)
    write_ppm("rgb8_adam7.ppm", rgb)

    # cross-check the hand-made files against PIL where PIL's meaning is the same
    for name in ("rgb16", "rgba16_adam7", "graya8", "gray1", "gray2", "gray4", "pal4_adam7", "rgb8_adam7"):
        im = Image.open(out(name + ".png"))
        im.load()
        got = np.asarray(im.convert("RGB"))
        want = np.asarray(Image.open(out(name + ".ppm")))
        assert (got == want).all(), name
    im = np.asarray(Image.open(out("gray16.png")))
    assert (im.astype(int) == g16[..., 0]).all()


# ----------------------------------------------------------------------- JPEG

def make_jpegs():
    from PIL import Image

    y, x = np.mgrid[0:H, 0:W]
    smooth = np.stack([x * 8, y * 10, 128 + 60 * np.sin(x / 3.0) * np.cos(y / 4.0)], -1).clip(0, 255).astype(np.uint8)
    im = Image.fromarray(smooth, "RGB")
    im.save(out("base.jpg"), quality=90)
    im.save(out("q444.jpg"), quality=95, subsampling=0)
    im.save(out("prog.jpg"), quality=85, progressive=True)
    im.convert("L").save(out("gray.jpg"), quality=90)
    cmyk = np.stack([255 - smooth[..., 0], 255 - smooth[..., 1], 255 - smooth[..., 2],
                     (x * 3 + y * 2).astype(np.uint8)], -1).astype(np.uint8)
    Image.fromarray(cmyk, "CMYK").save(out("cmyk.jpg"), quality=90)
    for name in ("base", "q444", "prog", "gray", "cmyk"):
        dec = Image.open(out(name + ".jpg"))
        write_ppm(name + ".ppm", np.asarray(dec.convert("RGB")))


# ----------------------------------------------------------------- resize etc

def make_resize():
    import torch
    import torch.nn.functional as F
    from PIL import Image
    import torchvision.transforms.functional as TF

    rgb = np.asarray(Image.open(out("rgb8.png")).convert("RGB"))
    t = torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None]
    for (w, h) in ((17, 13), (45, 37), (50, 10), (1, 1)):
        r = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)
        r[0].permute(1, 2, 0).contiguous().numpy().astype("<f4").tofile(out("resize_%dx%d.f32" % (w, h)))
    x = TF.normalize(TF.to_tensor(Image.fromarray(rgb)), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    x.permute(1, 2, 0).contiguous().numpy().astype("<f4").tofile(out("to_tensor.f32"))


# --------------------------------------------------------------------- config

CONFIG_YAML = """\
# dcl test config
model:
  name: tf_efficientnet_b4_ns
  pretrained: true
  dropout: 0.2
  num_classes: 2
train:
  lr: 0.0002
  epochs: 30
  batch_size: 32
  weight_decay: 1.0e-5
  betas: [0.9, 0.999]
  amp: no
  schedule:
    - {epoch: 10, lr: 0.0001}
    - epoch: 20
      lr: 5.0e-5
  note: "quoted: with colon # not a comment"
  single: 'it''s'
  empty:
  tilde: ~
  quoted_null: "null"
  quoted_num: "42"
data:
  root: &root /data/ff++
  sets:
    - name: ff++
      quality: c23
      root: *root
    - name: celeb-df
      root: *root
  sizes: &sizes [380, 380]
  eval_sizes: *sizes
  mean: [0.485, 0.456, 0.406]
  multiline: |
    line one
    line two
  folded: >
    folded
    text
  neg: -17
  hex: 0x1f
  big: 123456789012
  utf8: "na\u00efve \u2713"
  escapes: "tab\\there\\\\"
dcl:
  temperature: 0.07
  queue: 4096
  weights: {inter: 1.0, intra: 0.5}
  empty_map: {}
  empty_seq: []
"""


def make_config():
    import json
    import yaml

    with open(out("config.yaml"), "w") as f:
        f.write(CONFIG_YAML)
    with open(out("config.yaml")) as f:
        data = yaml.safe_load(f)
    with open(out("config.json"), "w") as f:
        json.dump(data, f, indent=1, ensure_ascii=False)
        f.write("\n")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--check-safetensors":
        check_safetensors(sys.argv[2])
        return
    os.makedirs(OUT, exist_ok=True)
    make_safetensors()
    make_pngs()
    make_jpegs()
    make_resize()
    make_config()
    total = sum(os.path.getsize(out(f)) for f in os.listdir(OUT))
    print("wrote %d files, %d bytes, to %s" % (len(os.listdir(OUT)), total, os.path.normpath(OUT)))


if __name__ == "__main__":
    main()
