#!/usr/bin/python3
"""Write the PyTorch reference outputs ("goldens") that the C tests compare with.

    /usr/bin/python3 tools/make_goldens.py --out tests/fixtures [--only ops,arch,model]

Produces, under OUT:
  ops/<case>.safetensors    one file per operator case: inputs, parameters, the
                            output, a random upstream gradient "dy" and the
                            gradients of every input and parameter; attributes
                            in the safetensors __metadata__ (strings).
  arch/<name>.json          state_dict keys/shapes/dtypes, block table and
                            output shapes of every EfficientNet b0..b7 variant
                            (timm efficientnet_*, timm tf_efficientnet_*,
                            torchvision efficientnet_*), plus
                            tv_to_timm_b0.json, the torchvision->timm key map.
  model/<name>.weights.safetensors  initial state_dict of a reduced EfficientNet
  model/<name>.golden.safetensors   train/eval logits, loss, every gradient,
                            running statistics after the step, the last feature
                            map and 5 Adam steps.

Conventions
  * Tensors keep PyTorch's layouts (NCHW activations, OIHW conv weights); the
    C side converts activations to NHWC.
  * Every tensor is float32 except integer class targets and
    num_batches_tracked (int64).  Operator and whole-model references are
    computed in float64 from float32 inputs and rounded once to float32, so the
    stored values are as close to exact as float32 allows.
  * Everything is seeded; the files are written by a small writer in this
    script (sorted header keys, no timestamps) so a rerun gives identical
    bytes.  Each file is read back with the safetensors package as a check.
  * Padding metadata is always four integers "top,bottom,left,right".
"""
import argparse
import collections
import json
import math
import os
import struct
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

# ----------------------------------------------------------------------------
# safetensors writer (deterministic) and read-back check
# ----------------------------------------------------------------------------

_DT = {np.dtype('float32'): 'F32', np.dtype('float64'): 'F64', np.dtype('int64'): 'I64',
       np.dtype('int32'): 'I32', np.dtype('uint8'): 'U8'}


def _np(t):
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu()
        if t.is_floating_point():
            t = t.to(torch.float32)
        return t.contiguous().numpy()
    return np.ascontiguousarray(t)


def write_safetensors(path, tensors, metadata=None):
    """tensors: dict name -> tensor/ndarray.  Data laid out in sorted name order."""
    names = sorted(tensors)
    arrays = {k: _np(tensors[k]) for k in names}
    header = {}
    off = 0
    for k in names:
        a = arrays[k]
        if a.dtype not in _DT:
            raise TypeError('%s: unsupported dtype %s' % (k, a.dtype))
        nb = a.nbytes
        header[k] = {'dtype': _DT[a.dtype], 'shape': list(a.shape), 'data_offsets': [off, off + nb]}
        off += nb
    if metadata:
        header['__metadata__'] = {str(k): str(v) for k, v in metadata.items()}
    hb = json.dumps(header, sort_keys=True, separators=(',', ':')).encode('utf-8')
    hb += b' ' * ((8 - len(hb) % 8) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(hb)))
        f.write(hb)
        for k in names:
            f.write(arrays[k].astype(arrays[k].dtype.newbyteorder('<'), copy=False).tobytes())
    # read back with the reference implementation
    from safetensors import safe_open
    with safe_open(path, framework='np') as f:
        got = set(f.keys())
        assert got == set(names), (path, got ^ set(names))
        for k in names:
            b = f.get_tensor(k)
            assert b.dtype == arrays[k].dtype and b.shape == arrays[k].shape, (path, k)
            assert np.array_equal(b, arrays[k]), (path, k)
        if metadata:
            md = f.metadata()
            assert md == {str(k): str(v) for k, v in metadata.items()}, path
    return os.path.getsize(path)


def seed_of(name):
    return zlib.crc32(name.encode('utf-8')) & 0x7fffffff


def fmt(v):
    """Metadata value as a string: ints/floats via repr, tuples as 'a,b,c'."""
    if isinstance(v, (list, tuple)):
        return ','.join(fmt(x) for x in v)
    if isinstance(v, bool):
        return '1' if v else '0'
    if isinstance(v, float):
        return repr(v)
    return str(v)


# ----------------------------------------------------------------------------
# operator cases
# ----------------------------------------------------------------------------

def same_pad(size, k, s, d):
    """TF 'SAME' (before, after) for one dimension, as timm's pad_same."""
    total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


class Case:
    def __init__(self, name):
        self.name = name
        self.g = torch.Generator().manual_seed(seed_of(name))

    def randn(self, *shape, scale=1.0):
        return (torch.randn(*shape, generator=self.g, dtype=torch.float32) * scale)

    def uniform(self, lo, hi, *shape):
        return torch.rand(*shape, generator=self.g, dtype=torch.float32) * (hi - lo) + lo


def run_grad(fn, inputs, cs):
    """inputs: ordered dict name -> float32 tensor.  Computes y = fn(**inputs64) in
    float64, draws dy, returns dict with inputs, y, dy and d<name> for every input."""
    leaves = collections.OrderedDict((k, v.to(torch.float64).requires_grad_(True)) for k, v in inputs.items())
    y = fn(**leaves)
    dy = cs.randn(*y.shape).to(torch.float64) if y.dim() > 0 else cs.randn(1).reshape(()).to(torch.float64)
    grads = torch.autograd.grad(y, list(leaves.values()), dy)
    out = collections.OrderedDict()
    for k, v in inputs.items():
        out[k] = v
    out['y'] = y.detach()
    out['dy'] = dy
    for k, gr in zip(leaves, grads):
        out['d' + k] = gr
    return out


def conv_case(name, n, ci, h, w, co, k, s=1, pad=None, same=False, d=1, groups=1, bias=False):
    cs = Case(name)
    x = cs.randn(n, ci, h, w)
    fan_in = ci // groups * k * k
    wt = cs.randn(co, ci // groups, k, k, scale=1.0 / math.sqrt(fan_in))
    if same:
        pt, pb = same_pad(h, k, s, d)
        pl, pr = same_pad(w, k, s, d)
    else:
        p = pad if pad is not None else ((s - 1) + d * (k - 1)) // 2
        pt = pb = pl = pr = p
    inputs = collections.OrderedDict([('x', x), ('w', wt)])
    if bias:
        inputs['b'] = cs.randn(co, scale=0.5)

    def fn(x, w, b=None):
        xp = F.pad(x, (pl, pr, pt, pb))   # zero padding, exactly timm's pad_same + conv
        return F.conv2d(xp, w, b, stride=s, padding=0, dilation=d, groups=groups)
    t = run_grad(fn, inputs, cs)
    md = dict(op='conv2d', kernel=fmt((k, k)), stride=fmt((s, s)), padding=fmt((pt, pb, pl, pr)),
              dilation=fmt((d, d)), groups=fmt(groups), bias=fmt(bias),
              padding_mode='tf_same' if same else 'symmetric')
    return t, md


def bn_train_case(name, n, c, h, w, momentum, eps):
    cs = Case(name)
    x = cs.randn(n, c, h, w) * cs.uniform(0.5, 2.0, 1, c, 1, 1) + cs.randn(1, c, 1, 1)
    gamma = cs.uniform(0.5, 1.5, c)
    beta = cs.randn(c, scale=0.5)
    rm = cs.randn(c, scale=0.2)
    rv = cs.uniform(0.5, 1.5, c)
    bn = torch.nn.BatchNorm2d(c, eps=eps, momentum=momentum).double().train()
    with torch.no_grad():
        bn.weight.copy_(gamma)
        bn.bias.copy_(beta)
        bn.running_mean.copy_(rm)
        bn.running_var.copy_(rv)
    xx = x.double().requires_grad_(True)
    y = bn(xx)
    dy = cs.randn(*y.shape).double()
    dx, dg, db = torch.autograd.grad(y, [xx, bn.weight, bn.bias], dy)
    xd = x.double()
    mean = xd.mean(dim=(0, 2, 3))
    var = xd.var(dim=(0, 2, 3), unbiased=False)
    t = collections.OrderedDict(x=x, weight=gamma, bias=beta, running_mean=rm, running_var=rv,
                                y=y.detach(), dy=dy, dx=dx, dweight=dg, dbias=db,
                                mean=mean, var=var, invstd=1.0 / torch.sqrt(var + eps),
                                running_mean_after=bn.running_mean, running_var_after=bn.running_var)
    # the update rule the engine follows, checked against PyTorch here
    m_rows = n * h * w
    assert torch.allclose(bn.running_mean, (1 - momentum) * rm.double() + momentum * mean)
    assert torch.allclose(bn.running_var, (1 - momentum) * rv.double() + momentum * var * m_rows / (m_rows - 1))
    md = dict(op='batch_norm', training='1', eps=fmt(eps), momentum=fmt(momentum),
              running_var_update='unbiased')
    return t, md


def bn_eval_case(name, n, c, h, w, eps):
    cs = Case(name)
    x = cs.randn(n, c, h, w)
    gamma = cs.uniform(0.5, 1.5, c)
    beta = cs.randn(c, scale=0.5)
    rm = cs.randn(c, scale=0.3)
    rv = cs.uniform(0.3, 2.0, c)
    inputs = collections.OrderedDict(x=x, weight=gamma, bias=beta)

    def fn(x, weight, bias):
        return F.batch_norm(x, rm.double(), rv.double(), weight, bias, training=False, eps=eps)
    t = run_grad(fn, inputs, cs)
    t['running_mean'] = rm
    t['running_var'] = rv
    md = dict(op='batch_norm', training='0', eps=fmt(eps), momentum=fmt(0.1))
    return t, md


def act_case(name, act, shape):
    cs = Case(name)
    x = cs.randn(*shape, scale=3.0)
    fns = {'silu': F.silu, 'sigmoid': torch.sigmoid, 'relu': F.relu}
    t = run_grad(lambda x: fns[act](x), collections.OrderedDict(x=x), cs)
    return t, dict(op=act)


def prelu_case(name, n, c, h, w):
    cs = Case(name)
    x = cs.randn(n, c, h, w)
    alpha = cs.uniform(0.05, 0.5, c)
    t = run_grad(lambda x, weight: F.prelu(x, weight), collections.OrderedDict(x=x, weight=alpha), cs)
    return t, dict(op='prelu', num_parameters=fmt(c))


def pool_case(name, kind, n, c, h, w, k, s, p, ceil_mode=False, count_include_pad=True):
    cs = Case(name)
    x = cs.randn(n, c, h, w)
    if kind == 'max':
        fn = lambda x: F.max_pool2d(x, k, s, p, ceil_mode=ceil_mode)
    else:
        fn = lambda x: F.avg_pool2d(x, k, s, p, ceil_mode=ceil_mode, count_include_pad=count_include_pad)
    t = run_grad(fn, collections.OrderedDict(x=x), cs)
    md = dict(op='max_pool2d' if kind == 'max' else 'avg_pool2d', kernel=fmt((k, k)), stride=fmt((s, s)),
              padding=fmt((p, p, p, p)), ceil_mode=fmt(ceil_mode))
    if kind == 'avg':
        md['count_include_pad'] = fmt(count_include_pad)
    return t, md


def simple_case(name, op, fn, inputs_spec, md_extra=None):
    cs = Case(name)
    inputs = collections.OrderedDict()
    for k, (shape, scale) in inputs_spec.items():
        inputs[k] = cs.randn(*shape, scale=scale)
    t = run_grad(fn, inputs, cs)
    md = dict(op=op)
    md.update(md_extra or {})
    return t, md


def cross_entropy_case(name, n, k):
    cs = Case(name)
    logits = cs.randn(n, k, scale=2.0)
    target = torch.randint(0, k, (n,), generator=cs.g, dtype=torch.int64)
    t = run_grad(lambda x: F.cross_entropy(x, target, reduction='mean'), collections.OrderedDict(x=logits), cs)
    t['target'] = target
    return t, dict(op='cross_entropy', reduction='mean')


def bce_case(name, n):
    cs = Case(name)
    logits = cs.randn(n, scale=3.0)
    target = (torch.rand(n, generator=cs.g) < 0.5).to(torch.float32)
    target[0] = 0.3   # one soft label: the formula must hold for targets in (0,1) too
    t = run_grad(lambda x: F.binary_cross_entropy_with_logits(x, target.double(), reduction='mean'),
                 collections.OrderedDict(x=logits), cs)
    t['target'] = target
    return t, dict(op='bce_with_logits', reduction='mean')


def op_cases():
    C = []
    add = lambda name, tm: C.append((name,) + tm)
    # convolution
    add('conv1x1_bias', conv_case('conv1x1_bias', 2, 8, 5, 7, 12, 1, bias=True))
    add('conv1x1_nobias', conv_case('conv1x1_nobias', 2, 6, 6, 5, 16, 1))
    add('conv3x3_s1_p1', conv_case('conv3x3_s1_p1', 2, 4, 8, 7, 6, 3, 1, bias=True))
    add('conv3x3_s2_same', conv_case('conv3x3_s2_same', 2, 4, 9, 10, 6, 3, 2, same=True))
    add('conv3x3_s2_same_even', conv_case('conv3x3_s2_same_even', 2, 4, 8, 12, 6, 3, 2, same=True))
    add('dw3x3_s1', conv_case('dw3x3_s1', 2, 8, 8, 7, 8, 3, 1, groups=8))
    add('dw3x3_s2', conv_case('dw3x3_s2', 2, 8, 9, 8, 8, 3, 2, groups=8))
    add('dw3x3_s2_same', conv_case('dw3x3_s2_same', 2, 8, 8, 9, 8, 3, 2, same=True, groups=8))
    add('dw5x5_s1', conv_case('dw5x5_s1', 2, 8, 8, 9, 8, 5, 1, groups=8))
    add('dw5x5_s2', conv_case('dw5x5_s2', 2, 8, 11, 10, 8, 5, 2, groups=8))
    add('dw5x5_s1_same', conv_case('dw5x5_s1_same', 2, 8, 7, 8, 8, 5, 1, same=True, groups=8))
    add('dw5x5_s2_same', conv_case('dw5x5_s2_same', 2, 8, 10, 11, 8, 5, 2, same=True, groups=8))
    add('conv3x3_dil2', conv_case('conv3x3_dil2', 2, 4, 9, 8, 6, 3, 1, d=2, bias=True))
    add('conv3x3_g2', conv_case('conv3x3_g2', 2, 8, 6, 7, 10, 3, 1, groups=2))
    add('stem3x3_s2', conv_case('stem3x3_s2', 2, 3, 12, 11, 8, 3, 2))
    add('stem3x3_s2_same', conv_case('stem3x3_s2_same', 2, 3, 12, 11, 8, 3, 2, same=True))
    # batch norm
    add('bn_train_m0.1', bn_train_case('bn_train_m0.1', 2, 6, 5, 4, 0.1, 1e-5))
    add('bn_train_m0.1_eps1e-3', bn_train_case('bn_train_m0.1_eps1e-3', 2, 8, 3, 5, 0.1, 1e-3))
    add('bn_train_m0.01_eps1e-3', bn_train_case('bn_train_m0.01_eps1e-3', 2, 10, 4, 3, 0.01, 1e-3))
    add('bn_eval', bn_eval_case('bn_eval', 2, 6, 4, 5, 1e-3))
    # activations
    add('silu', act_case('silu', 'silu', (2, 5, 4, 3)))
    add('sigmoid', act_case('sigmoid', 'sigmoid', (2, 5, 4, 3)))
    add('relu', act_case('relu', 'relu', (2, 5, 4, 3)))
    add('prelu', prelu_case('prelu', 2, 6, 5, 4))
    # pooling
    add('maxpool3x3_s2_p1', pool_case('maxpool3x3_s2_p1', 'max', 2, 4, 9, 8, 3, 2, 1))
    add('maxpool2x2_s2_ceil', pool_case('maxpool2x2_s2_ceil', 'max', 2, 4, 7, 9, 2, 2, 0, ceil_mode=True))
    add('maxpool3x3_s2_ceil', pool_case('maxpool3x3_s2_ceil', 'max', 2, 4, 10, 11, 3, 2, 0, ceil_mode=True))
    add('avgpool3x3_s1_p1_incl', pool_case('avgpool3x3_s1_p1_incl', 'avg', 2, 4, 6, 7, 3, 1, 1,
                                           count_include_pad=True))
    add('avgpool3x3_s1_p1_excl', pool_case('avgpool3x3_s1_p1_excl', 'avg', 2, 4, 6, 7, 3, 1, 1,
                                           count_include_pad=False))
    add('gap', simple_case('gap', 'adaptive_avg_pool2d', lambda x: F.adaptive_avg_pool2d(x, 1),
                           {'x': ((2, 8, 5, 7), 1.0)}, {'output_size': '1,1'}))
    # linear, SE scaling
    add('linear', simple_case('linear', 'linear', lambda x, w, b: F.linear(x, w, b),
                              collections.OrderedDict([('x', ((4, 10), 1.0)), ('w', ((6, 10), 0.3)),
                                                       ('b', ((6,), 0.5))])))
    add('mul_bcast', simple_case('mul_bcast', 'mul_bcast', lambda x, s: x * s,
                                 collections.OrderedDict([('x', ((2, 8, 5, 4), 1.0)), ('s', ((2, 8, 1, 1), 1.0))])))
    # losses and normalisation
    add('softmax', simple_case('softmax', 'softmax', lambda x: F.softmax(x, dim=1),
                               {'x': ((4, 7), 2.0)}, {'dim': '1'}))
    add('log_softmax', simple_case('log_softmax', 'log_softmax', lambda x: F.log_softmax(x, dim=1),
                                   {'x': ((4, 7), 2.0)}, {'dim': '1'}))
    add('cross_entropy', cross_entropy_case('cross_entropy', 5, 4))
    add('bce_with_logits', bce_case('bce_with_logits', 6))
    add('normalize', simple_case('normalize', 'normalize', lambda x: F.normalize(x, p=2.0, dim=1, eps=1e-12),
                                 {'x': ((4, 9), 1.0)}, {'dim': '1', 'p': '2', 'eps': repr(1e-12)}))
    return C


def make_ops(out):
    total = 0
    names = []
    for name, t, md in op_cases():
        md = dict(md)
        md['case'] = name
        md['generator'] = 'tools/make_goldens.py (torch %s)' % torch.__version__.split('+')[0].split('a')[0]
        md['compute_dtype'] = 'float64'
        total += write_safetensors(os.path.join(out, 'ops', name + '.safetensors'), t, md)
        names.append(name)
    print('ops: %d cases, %d bytes' % (len(names), total))
    return total


# ----------------------------------------------------------------------------
# architectures
# ----------------------------------------------------------------------------

def _import_timm():
    import logging
    logging.getLogger('timm').setLevel(logging.ERROR)
    import timm  # noqa: F401
    import timm.models.efficientnet as te
    return te


def _conv_info(conv):
    k = conv.kernel_size[0]
    s = conv.stride[0]
    pad = 'same' if type(conv).__name__ == 'Conv2dSame' else conv.padding[0]
    return k, s, pad


def timm_blocks(model):
    rows = []
    for si, stage in enumerate(model.blocks):
        for bi, blk in enumerate(stage):
            key = 'blocks.%d.%d' % (si, bi)
            kind = type(blk).__name__
            se = blk.se.conv_reduce.out_channels if hasattr(blk.se, 'conv_reduce') else 0
            k, s, pad = _conv_info(blk.conv_dw)
            if kind == 'DepthwiseSeparableConv':
                rows.append([key, 'ds', blk.conv_dw.in_channels, blk.conv_dw.out_channels,
                             blk.conv_pw.out_channels, k, s, pad, se, int(blk.has_skip)])
            elif kind == 'InvertedResidual':
                rows.append([key, 'ir', blk.conv_pw.in_channels, blk.conv_pw.out_channels,
                             blk.conv_pwl.out_channels, k, s, pad, se, int(blk.has_skip)])
            else:
                raise ValueError('unexpected block %s' % kind)
    return rows


def tv_blocks(model):
    rows = []
    for si in range(1, len(model.features) - 1):
        for bi, blk in enumerate(model.features[si]):
            key = 'features.%d.%d' % (si, bi)
            seq = blk.block
            if len(seq) == 4:
                cin, mid = seq[0][0].in_channels, seq[0][0].out_channels
                dw, se, proj, kind = seq[1][0], seq[2], seq[3][0], 'ir'
            else:
                dw, se, proj, kind = seq[0][0], seq[1], seq[2][0], 'ds'
                cin = mid = dw.in_channels
            k, s, pad = _conv_info(dw)
            rows.append([key, kind, cin, mid, proj.out_channels, k, s, pad, se.fc1.out_channels,
                         int(blk.use_res_connect)])
    return rows


ARCH_SIZES = [(224, 224), (97, 131)]


def arch_record(name, family, model, head_key):
    model.eval()
    sd = model.state_dict()
    keys = [[k, list(v.shape), 'I64' if v.dtype == torch.int64 else 'F32'] for k, v in sd.items()]
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    rec = collections.OrderedDict()
    rec['name'] = name
    rec['family'] = family
    rec['num_classes'] = sd[head_key + '.weight'].shape[0]
    rec['num_features'] = sd[head_key + '.weight'].shape[1]
    rec['bn_eps'] = bns[0].eps
    rec['bn_momentum'] = bns[0].momentum
    assert all(b.eps == bns[0].eps and b.momentum == bns[0].momentum for b in bns)
    if family == 'torchvision':
        stem = model.features[0][0]
        rec['stem'] = [stem.out_channels] + list(_conv_info(stem))
        rec['dropout'] = model.classifier[0].p
        rec['blocks'] = tv_blocks(model)
    else:
        rec['stem'] = [model.conv_stem.out_channels] + list(_conv_info(model.conv_stem))
        rec['dropout'] = model.drop_rate
        rec['blocks'] = timm_blocks(model)
    rec['block_columns'] = ['key', 'type', 'in', 'mid', 'out', 'kernel', 'stride', 'padding', 'se', 'skip']
    outs = []
    with torch.no_grad():
        for h, w in ARCH_SIZES:
            x = torch.zeros(1, 3, h, w)
            feats = model.features(x) if family == 'torchvision' else model.forward_features(x)
            logits = model(x)
            outs.append(collections.OrderedDict(input=[1, 3, h, w], features=list(feats.shape),
                                                logits=list(logits.shape)))
    rec['outputs'] = outs
    rec['num_params'] = int(sum(v.numel() for k, v in sd.items() if v.dtype != torch.int64))
    rec['keys'] = keys
    return rec


def dump_compact(rec):
    """JSON with one line per top-level field and one line per key/block."""
    lines = ['{']
    items = list(rec.items())
    for i, (k, v) in enumerate(items):
        comma = ',' if i + 1 < len(items) else ''
        if k in ('keys', 'blocks', 'outputs', 'pairs') and isinstance(v, list):
            lines.append('  %s: [' % json.dumps(k))
            for j, row in enumerate(v):
                lines.append('    %s%s' % (json.dumps(row, separators=(',', ':')), ',' if j + 1 < len(v) else ''))
            lines.append('  ]%s' % comma)
        else:
            lines.append('  %s: %s%s' % (json.dumps(k), json.dumps(v, separators=(',', ':')), comma))
    lines.append('}')
    return '\n'.join(lines) + '\n'


def write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)
    return os.path.getsize(path)


def tv_to_timm_map(tv_sd, timm_sd, tv_model):
    """Key map torchvision EfficientNet (v1) -> timm EfficientNet."""
    last = len(tv_model.features) - 1
    pairs = []
    for k in tv_sd:
        p = k.split('.')
        if p[0] == 'classifier':
            t = 'classifier.' + p[2]
        elif p[0] == 'features' and p[1] == '0':
            t = {'0': 'conv_stem.', '1': 'bn1.'}[p[2]] + '.'.join(p[3:])
        elif p[0] == 'features' and int(p[1]) == last:
            t = {'0': 'conv_head.', '1': 'bn2.'}[p[2]] + '.'.join(p[3:])
        elif p[0] == 'features':
            stage, idx = int(p[1]) - 1, p[2]
            blk = tv_model.features[int(p[1])][int(idx)].block
            assert p[3] == 'block'
            sub = p[4]
            if len(blk) == 4:   # expand, depthwise, SE, project
                names = {('0', '0'): 'conv_pw', ('0', '1'): 'bn1', ('1', '0'): 'conv_dw', ('1', '1'): 'bn2',
                         ('3', '0'): 'conv_pwl', ('3', '1'): 'bn3'}
                se_idx = '2'
            else:               # depthwise, SE, project
                names = {('0', '0'): 'conv_dw', ('0', '1'): 'bn1', ('2', '0'): 'conv_pw', ('2', '1'): 'bn2'}
                se_idx = '1'
            if sub == se_idx:
                t = 'se.' + {'fc1': 'conv_reduce', 'fc2': 'conv_expand'}[p[5]] + '.' + '.'.join(p[6:])
            else:
                t = names[(sub, p[5])] + '.' + '.'.join(p[6:])
            t = 'blocks.%d.%s.%s' % (stage, idx, t)
        else:
            raise KeyError(k)
        assert t in timm_sd, (k, t)
        assert tv_sd[k].shape == timm_sd[t].shape, (k, t)
        pairs.append([k, t])
    assert len(pairs) == len(timm_sd) == len(set(t for _, t in pairs))
    return pairs


def make_arch(out):
    te = _import_timm()
    import torchvision
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    total = 0
    for i in range(8):
        for fam, name in (('timm', 'efficientnet_b%d' % i), ('timm', 'tf_efficientnet_b%d' % i),
                          ('torchvision', 'tv_efficientnet_b%d' % i)):
            torch.manual_seed(0)
            if fam == 'timm':
                m = getattr(te, name)(pretrained=False)
                rec = arch_record(name, fam, m, 'classifier')
            else:
                m = getattr(torchvision.models, 'efficientnet_b%d' % i)(weights=None)
                rec = arch_record(name, fam, m, 'classifier.1')
            total += write_text(os.path.join(out, 'arch', name + '.json'), dump_compact(rec))
            del m
    # torchvision -> timm mapping, checked by equal logits with the same weights
    torch.set_num_threads(1)
    torch.manual_seed(1)
    tv = torchvision.models.efficientnet_b0(weights=None).eval()
    tm = te.efficientnet_b0(pretrained=False).eval()
    tv_sd, tm_sd = tv.state_dict(), tm.state_dict()
    g = torch.Generator().manual_seed(seed_of('tv_to_timm_b0'))
    with torch.no_grad():   # non-trivial BN statistics so the mapping of every buffer matters
        for k, v in tv_sd.items():
            if k.endswith('running_mean'):
                v.copy_(torch.randn(v.shape, generator=g) * 0.1)
            elif k.endswith('running_var'):
                v.copy_(torch.rand(v.shape, generator=g) + 0.5)
            elif k.endswith('.bias') and v.dim() == 1:
                v.add_(torch.randn(v.shape, generator=g) * 0.1)
    pairs = tv_to_timm_map(tv_sd, tm_sd, tv)
    tm.load_state_dict({t: tv_sd[k] for k, t in pairs}, strict=True)
    x = torch.randn(2, 3, 64, 80, generator=g)
    with torch.no_grad():
        a = tv.double()(x.double())
        b = tm.double()(x.double())
    err = (a - b).abs().max().item()
    assert err < 1e-9, 'torchvision/timm b0 logits differ by %g' % err
    rec = collections.OrderedDict()
    rec['from'] = 'torchvision efficientnet_b0'
    rec['to'] = 'timm efficientnet_b0'
    rec['rules'] = [
        'features.0.0.* -> conv_stem.*; features.0.1.* -> bn1.*',
        'features.S.J.block.* (S=1..7) -> blocks.(S-1).J.*',
        '  with expansion (4 sub-blocks): 0.0 conv_pw, 0.1 bn1, 1.0 conv_dw, 1.1 bn2, 2.fc1 se.conv_reduce, '
        '2.fc2 se.conv_expand, 3.0 conv_pwl, 3.1 bn3',
        '  without expansion (3 sub-blocks): 0.0 conv_dw, 0.1 bn1, 1.fc1 se.conv_reduce, 1.fc2 se.conv_expand, '
        '2.0 conv_pw, 2.1 bn2',
        'features.LAST.0.* -> conv_head.*; features.LAST.1.* -> bn2.* (LAST = 8)',
        'classifier.1.* -> classifier.*',
    ]
    rec['checked'] = 'float64 eval logits on a 2x3x64x80 input agree to %.1e' % 1e-9
    rec['pairs'] = pairs
    total += write_text(os.path.join(out, 'arch', 'tv_to_timm_b0.json'), dump_compact(rec))
    print('arch: %d bytes' % total)
    return total


# ----------------------------------------------------------------------------
# whole model
# ----------------------------------------------------------------------------

MODEL_CFGS = [
    # name, timm variant, extra kwargs, input shape
    ('efficientnet_b0_tiny', 'efficientnet_b0', {}, (2, 3, 64, 64)),
    ('tf_efficientnet_b0_tiny', 'tf_efficientnet_b0', {'bn_eps': 1e-3, 'pad_type': 'same'}, (2, 3, 57, 70)),
]
CH_MULT, DEPTH_MULT, NUM_CLASSES = 0.25, 0.34, 2
ADAM = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-5)
ADAM_STEPS = 5


def make_model_case(out, name, variant, extra, shape):
    te = _import_timm()
    torch.set_num_threads(1)
    torch.manual_seed(seed_of(name))
    model = te._gen_efficientnet(variant, channel_multiplier=CH_MULT, depth_multiplier=DEPTH_MULT,
                                 pretrained=False, num_classes=NUM_CLASSES, drop_rate=0.0,
                                 drop_path_rate=0.0, **extra)
    g = torch.Generator().manual_seed(seed_of(name + '/data'))
    # random BN affine parameters and running statistics (timm initialises 1/0),
    # so that every BN input of the engine is exercised
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                c = mod.num_features
                mod.weight.copy_(torch.rand(c, generator=g) + 0.5)
                mod.bias.copy_(torch.randn(c, generator=g) * 0.1)
                mod.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    init = collections.OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
    x = torch.randn(*shape, generator=g)
    target = torch.tensor([i % NUM_CLASSES for i in range(shape[0])][::-1], dtype=torch.int64)

    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    md = collections.OrderedDict()
    md['model'] = variant
    md['builder'] = 'timm.models.efficientnet._gen_efficientnet'
    md['timm'] = __import__('timm').__version__
    md['channel_multiplier'] = fmt(CH_MULT)
    md['depth_multiplier'] = fmt(DEPTH_MULT)
    md['num_classes'] = fmt(NUM_CLASSES)
    md['drop_rate'] = fmt(0.0)
    md['drop_path_rate'] = fmt(0.0)
    md['bn_eps'] = fmt(bn.eps)
    md['bn_momentum'] = fmt(bn.momentum)
    md['pad_type'] = extra.get('pad_type', 'symmetric')
    md['input'] = fmt(shape)
    md['compute_dtype'] = 'float64'
    md['optimizer'] = 'torch.optim.Adam lr=%r betas=%r,%r eps=%r weight_decay=%r (L2 added to the gradient)' % (
        ADAM['lr'], ADAM['betas'][0], ADAM['betas'][1], ADAM['eps'], ADAM['weight_decay'])
    md['adam_steps'] = fmt(ADAM_STEPS)
    md['contents'] = ('input, target; train mode: logits, features (forward_features), loss (cross-entropy mean), '
                      'grad.<param>, after.<buffer> (running stats after that forward); eval mode from the initial '
                      'state: eval_logits; adam.loss[i] = train loss before step i (same batch, from the initial '
                      'state); after the steps: adam.eval_logits, then adam.train_logits')

    model = model.double()
    xd = x.double()
    gold = collections.OrderedDict()
    gold['input'] = x
    gold['target'] = target

    # eval-mode logits from the initial state
    model.eval()
    with torch.no_grad():
        gold['eval_logits'] = model(xd)
        gold['eval_features'] = model.forward_features(xd)

    # one train-mode forward/backward
    model.train()
    model.zero_grad(set_to_none=True)
    feats = model.forward_features(xd)
    logits = model.forward_head(feats)
    loss = F.cross_entropy(logits, target)
    loss.backward()
    gold['features'] = feats.detach()
    gold['logits'] = logits.detach()
    gold['loss'] = loss.detach().reshape(1)
    for k, p in model.named_parameters():
        gold['grad.' + k] = p.grad.detach().clone()
    for k, b in model.named_buffers():
        gold['after.' + k] = b.detach().clone()

    # Adam from the initial state on the same batch
    model.load_state_dict(init)
    model = model.double().train()
    opt = torch.optim.Adam(model.parameters(), **ADAM)
    losses = []
    for _ in range(ADAM_STEPS):
        opt.zero_grad(set_to_none=True)
        l = F.cross_entropy(model(xd), target)
        losses.append(l.item())
        l.backward()
        opt.step()
    assert abs(losses[0] - loss.item()) < 1e-12
    gold['adam.loss'] = torch.tensor(losses, dtype=torch.float64)
    with torch.no_grad():
        model.eval()
        gold['adam.eval_logits'] = model(xd)
        model.train()
        gold['adam.train_logits'] = model(xd)

    n = write_safetensors(os.path.join(out, 'model', name + '.weights.safetensors'), init,
                          collections.OrderedDict([('model', variant), ('channel_multiplier', fmt(CH_MULT)),
                                                   ('depth_multiplier', fmt(DEPTH_MULT)),
                                                   ('num_classes', fmt(NUM_CLASSES)),
                                                   ('bn_eps', fmt(bn.eps)),
                                                   ('pad_type', md['pad_type'])]))
    n += write_safetensors(os.path.join(out, 'model', name + '.golden.safetensors'), gold, md)
    print('model %s: loss %.6f, adam losses %s, %d bytes' % (
        name, loss.item(), ' '.join('%.5f' % v for v in losses), n))
    return n


def make_models(out):
    return sum(make_model_case(out, *cfg) for cfg in MODEL_CFGS)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='tests/fixtures')
    ap.add_argument('--only', default='ops,arch,model', help='comma list of ops, arch, model')
    a = ap.parse_args()
    parts = set(a.only.split(','))
    bad = parts - {'ops', 'arch', 'model'}
    if bad:
        ap.error('unknown part(s): %s' % ','.join(sorted(bad)))
    total = 0
    if 'ops' in parts:
        total += make_ops(a.out)
    if 'model' in parts:
        total += make_models(a.out)
    if 'arch' in parts:
        total += make_arch(a.out)
    print('total %d bytes' % total)


if __name__ == '__main__':
    main()
