#!/usr/bin/python3
"""How far PyTorch's own bf16 mixed precision lands from its exact result on
the whole-model goldens: the yardstick of dcl's bf16 activation storage.

    /usr/bin/python3 tools/make_bf16_reference.py [--out tests/fixtures]

For each reduced EfficientNet of tools/make_goldens.py (weights, input and
float64 results from tests/fixtures/model/), runs the same batch under
torch.autocast(bfloat16) on the CPU (convolutions and matrix products in
bf16, the rest as autocast decides) and writes
model/amp_bf16_deviation.json: per model, max|amp - exact| / max|exact| of
the evaluation logits, the training logits and features, and over the
parameter gradients (those not vanishing in exact arithmetic) their mean and
worst.  tests/test_precision.c holds dcl's bf16 storage to these numbers.
"""
import argparse
import collections
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_goldens as mg  # noqa: E402


def rel_max(a, b):
    a, b = a.double(), b.double()
    mb = b.abs().max().item()
    d = (a - b).abs().max().item()
    return d / mb if mb > 0 else d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='tests/fixtures')
    a = ap.parse_args()
    from safetensors.torch import load_file
    te = mg._import_timm()
    torch.set_num_threads(1)
    res = collections.OrderedDict()
    res['what'] = ('max|torch.autocast(bfloat16) - exact| / max|exact| per tensor on the model goldens '
                   '(CPU, torch %s, timm %s)' % (torch.__version__, __import__('timm').__version__))
    for name, variant, extra, _shape in mg.MODEL_CFGS:
        model = te._gen_efficientnet(variant, channel_multiplier=mg.CH_MULT, depth_multiplier=mg.DEPTH_MULT,
                                     pretrained=False, num_classes=mg.NUM_CLASSES, drop_rate=0.0,
                                     drop_path_rate=0.0, **extra)
        model.load_state_dict(load_file(os.path.join(a.out, 'model', name + '.weights.safetensors')))
        g = load_file(os.path.join(a.out, 'model', name + '.golden.safetensors'))
        x, t = g['input'].float(), g['target'].long()
        model.eval()
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
            eval_logits = model(x).float()
        model.train()
        model.zero_grad(set_to_none=True)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            feats = model.forward_features(x)
            logits = model.forward_head(feats)
        F.cross_entropy(logits.float(), t).backward()
        errs = []
        for k, p in model.named_parameters():
            want = g['grad.' + k]
            if want.abs().max().item() < 1e-6:   # vanishes in exact arithmetic
                continue
            errs.append(rel_max(p.grad, want))
        r = collections.OrderedDict()
        r['eval_logits'] = rel_max(eval_logits, g['eval_logits'])
        r['train_logits'] = rel_max(logits.float(), g['logits'])
        r['features'] = rel_max(feats.float(), g['features'])
        r['grad_mean'] = sum(errs) / len(errs)
        r['grad_worst'] = max(errs)
        r['grads'] = len(errs)
        res[name] = r
        print(name, ' '.join('%s %.4g' % kv for kv in r.items()))
    path = os.path.join(a.out, 'model', 'amp_bf16_deviation.json')
    with open(path, 'w') as f:
        json.dump(res, f, indent=1)
        f.write('\n')
    print('wrote', path)


if __name__ == '__main__':
    main()
