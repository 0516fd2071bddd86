#!/usr/bin/env python3
"""Goldens for `dcl forward`: a 64x64 crop of scikit-image's astronaut photo
(public domain) saved as PNG, and PyTorch's eval-mode logits of the narrow
test EfficientNets (tests/fixtures/model/*_tiny.weights.safetensors) on it,
with ImageNet normalisation and with a custom mean/std.
Usage: /usr/bin/python3 tools/make_cli_goldens.py [--out tests/fixtures/cli]"""
import argparse, json, os
import numpy as np, torch, timm
from PIL import Image
from safetensors.torch import load_file
import skimage.data

ap = argparse.ArgumentParser()
ap.add_argument("--out", default="tests/fixtures/cli")
a = ap.parse_args()
os.makedirs(a.out, exist_ok=True)
img = skimage.data.astronaut()[40:232, 150:342]          # the face, 192x192
img = np.asarray(Image.fromarray(img).resize((64, 64), Image.BILINEAR))
Image.fromarray(img).save(os.path.join(a.out, "face64.png"))
x = torch.tensor(np.asarray(Image.open(os.path.join(a.out, "face64.png")).convert("RGB")), dtype=torch.float64) / 255.0
res = {}
for arch in ["efficientnet_b0", "tf_efficientnet_b0"]:
    kw = dict(channel_multiplier=0.25, depth_multiplier=0.34, pretrained=False, num_classes=2, drop_rate=0.0)
    if arch.startswith("tf_"):
        kw.update(pad_type="same", bn_eps=1e-3)
    m = timm.models.efficientnet._gen_efficientnet("efficientnet_b0", **kw).double().eval()
    sd = load_file(f"tests/fixtures/model/{arch}_tiny.weights.safetensors")
    m.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in sd.items()})
    for name, mean, std in [("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), ("half", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]:
        t = ((x - torch.tensor(mean, dtype=torch.float64)) / torch.tensor(std, dtype=torch.float64)).permute(2, 0, 1)[None]
        with torch.no_grad():
            res[f"{arch}/{name}"] = m(t)[0].tolist()
with open(os.path.join(a.out, "forward.json"), "w") as f:
    json.dump(res, f, indent=1, sort_keys=True)
print(json.dumps(res))
