#!/usr/bin/python3
"""Write the PyTorch reference of one DCL training step and of a short DCL run.

    /usr/bin/python3 tools/make_dcl_goldens.py [--out tests/fixtures/dcl]

This is an independent implementation of docs/DCL.md (the method definition);
the C implementation is tested against what it writes.

Produces, under OUT:
  dcl_step.safetensors  one training step: the initial query and key tables,
                        the two views, labels, masks, queue and prototype
                        state; the embeddings, logits, features, every loss
                        term, the cell masks, every query gradient, the key
                        table after the EMA and its forward, the query running
                        statistics, and the queue/prototype state after the
                        update (plus three variants of the update alone:
                        top-k hard keys, prototypes never set, one class only).
  dcl_traj.safetensors  ten Adam steps from the same initial query table with
                        the key table a copy of it, empty queues and unset
                        prototypes, alternating two batches; per-step losses,
                        the final queue/prototype state and the final
                        eval-mode logits; and the per-step losses of the
                        same run in PyTorch's bfloat16 autocast (the yardstick
                        of the bf16 backends' trajectories).

Model: timm efficientnet_b0 with channel multiplier 0.25 and depth multiplier
0.34 (no classifier, drop rates 0), random initialisation with random
batch-norm affine parameters and running statistics (bn2's shift drawn
around 3 so that the locations of the last feature map are similar, as with
trained weights, and both intra-instance terms matter); embedding head
`embed` = Conv2d(C, 1, 1) with bias; classifier = global average pooling then
Linear(C, 1) named `classifier` (one logit, BCE with logits).  Input 96x96,
so the last feature map is 3x3 and L = 9.

Conventions (as tools/make_goldens.py): tensors keep PyTorch's layouts (NCHW);
everything is computed in float64 from float32 inputs and stored as float32,
except labels, counts, pointers, flags and 0/1 masks (int64).  Names of the
parameter tables are the timm state_dict keys plus embed.weight, embed.bias,
classifier.weight, classifier.bias.  Everything is seeded and the writer is
deterministic (sorted names, sorted header, no timestamps), so a rerun gives
identical bytes.  Hyper-parameters and a description of every tensor are in
the safetensors __metadata__ (strings).
"""
import argparse
import collections
import json
import math
import os
import struct
import zlib

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

# ----------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------

VARIANT = 'efficientnet_b0'
CH_MULT, DEPTH_MULT = 0.25, 0.34
IMG = 96                 # input side
NB = 4                   # batch
Q = 12                   # queue capacity
TOPK = 1                 # keys per class in the top-k variant
HP = collections.OrderedDict([
    ('tau', 0.07), ('alpha', 0.9), ('theta', 0.5), ('beta', 0.99), ('phi', 0.1),
    ('pixel_threshold', 0.1), ('cell_threshold', 0.5),
])
NORM_EPS = 1e-12         # normalize(v) = v / max(||v||, 1e-12)
ADAM = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-5)
TRAJ_STEPS = 10
TRAJ_PHI = [0.1] * 5 + [0.5] * 5
LABELS_A = [0, 1, 1, 0]
LABELS_B = [1, 0, 0, 1]
# fake-image rectangles (row0, row1, col0, col1) in pixels, end exclusive
RECTS_A = {1: (8, 72, 0, 48), 2: (48, 96, 40, 96)}
RECTS_B = {0: (0, 40, 24, 96), 3: (0, 96, 0, 96)}
# margin kept between every hard-sample cosine and theta, so float32 and
# float64 implementations take the same decisions
MIN_MARGIN = 0.02
BN2_SHIFT = 3.0
BATCH_B_ORDER = [3, 0, 1, 2]   # batch B images = the step's v2 in this order


def seed_of(name):
    return zlib.crc32(name.encode('utf-8')) & 0x7fffffff


def fmt(v):
    if isinstance(v, (list, tuple)):
        return ','.join(fmt(x) for x in v)
    if isinstance(v, bool):
        return '1' if v else '0'
    if isinstance(v, float):
        return repr(v)
    return str(v)


# ----------------------------------------------------------------------------
# deterministic safetensors writer with read-back check
# ----------------------------------------------------------------------------

_DTYPES = {np.dtype('float32'): 'F32', np.dtype('int64'): 'I64'}


def _as_array(t):
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu()
        if t.is_floating_point():
            t = t.to(torch.float32)
        elif t.dtype != torch.int64:
            t = t.to(torch.int64)
        return t.contiguous().numpy()        # keeps 0-d scalars 0-d
    return np.array(t, order='C')


def save(path, tensors, metadata):
    names = sorted(tensors)
    arrays = {n: _as_array(tensors[n]) for n in names}
    header, off = {}, 0
    for n in names:
        a = arrays[n]
        if a.dtype not in _DTYPES:
            raise TypeError('%s: dtype %s' % (n, a.dtype))
        header[n] = {'dtype': _DTYPES[a.dtype], 'shape': list(a.shape), 'data_offsets': [off, off + a.nbytes]}
        off += a.nbytes
    header['__metadata__'] = {str(k): str(v) for k, v in metadata.items()}
    hb = json.dumps(header, sort_keys=True, separators=(',', ':')).encode('utf-8')
    hb += b' ' * ((8 - len(hb) % 8) % 8)
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(hb)))
        f.write(hb)
        for n in names:
            f.write(arrays[n].astype(arrays[n].dtype.newbyteorder('<'), copy=False).tobytes())
    from safetensors import safe_open
    with safe_open(path, framework='np') as f:
        assert set(f.keys()) == set(names), path
        for n in names:
            b = f.get_tensor(n)
            assert b.dtype == arrays[n].dtype and b.shape == arrays[n].shape, (path, n)
            assert np.array_equal(b, arrays[n]), (path, n)
        assert f.metadata() == header['__metadata__'], path
    return os.path.getsize(path)


# ----------------------------------------------------------------------------
# model: parameter table as an ordered dict of named tensors
# ----------------------------------------------------------------------------

def _timm():
    import logging
    logging.disable(logging.WARNING)
    import timm.models.efficientnet as te
    return te


class Net:
    """The query (or key) network: timm body, `embed` and `classifier`.

    All three are torch modules converted to float64; `table()` gives every
    parameter and buffer under its fixture name."""

    def __init__(self, body, embed, classifier):
        self.body, self.embed, self.classifier = body, embed, classifier

    def modules(self):
        return [('', self.body), ('embed.', self.embed), ('classifier.', self.classifier)]

    def params(self):
        out = collections.OrderedDict()
        for prefix, m in self.modules():
            for k, p in m.named_parameters():
                out[prefix + k] = p
        return out

    def buffers(self):
        out = collections.OrderedDict()
        for prefix, m in self.modules():
            for k, b in m.named_buffers():
                out[prefix + k] = b
        return out

    def table(self):
        out = collections.OrderedDict()
        for prefix, m in self.modules():
            for k, v in m.state_dict().items():
                out[prefix + k] = v
        return out

    def load(self, table):
        for prefix, m in self.modules():
            sd = {k[len(prefix):]: v for k, v in table.items() if k.startswith(prefix) and
                  (prefix or not (k.startswith('embed.') or k.startswith('classifier.')))}
            m.load_state_dict(sd, strict=True)

    def train(self, mode=True):
        for _, m in self.modules():
            m.train(mode)

    def forward(self, x):
        """Returns (F, z, e, q): feature map (B,C,H',W'), logits (B,1),
        un-normalised embedding (B,L), normalised embedding q (B,L)."""
        feat = self.body.forward_features(x)
        e = self.embed(feat).flatten(1)
        q = F.normalize(e, p=2.0, dim=1, eps=NORM_EPS)
        z = self.classifier(feat.mean(dim=(2, 3)))   # dropout p = 0
        return feat, z, e, q


def new_net(seed):
    """Random float32 network (seeded), returned in float64."""
    te = _timm()
    torch.manual_seed(seed)
    body = te._gen_efficientnet(VARIANT, channel_multiplier=CH_MULT, depth_multiplier=DEPTH_MULT,
                                pretrained=False, num_classes=0, drop_rate=0.0, drop_path_rate=0.0)
    c = body.num_features
    embed = torch.nn.Conv2d(c, 1, 1, bias=True)
    classifier = torch.nn.Linear(c, 1)
    g = torch.Generator().manual_seed(seed ^ 0x5bd1e995)
    with torch.no_grad():
        for m in body.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
        # the last batch norm's shift around 3: after SiLU the locations of the
        # feature map are similar (cosines about 0.8-0.95, as with trained
        # weights), so that both intra-instance terms have sizable gradients
        body.bn2.bias.copy_(torch.randn(body.num_features, generator=g) * 0.3 + BN2_SHIFT)
    return Net(body.double(), embed.double(), classifier.double())


def f32_table(net):
    """The network's table rounded to float32 (floats) / kept (int64)."""
    return collections.OrderedDict((k, v.detach().clone().float() if v.is_floating_point() else v.detach().clone())
                                   for k, v in net.table().items())


def set_table(net, table):
    """Loads a (float32) table into the float64 network."""
    net.load(collections.OrderedDict((k, v.double() if v.is_floating_point() else v) for k, v in table.items()))


# ----------------------------------------------------------------------------
# the method (docs/DCL.md)
# ----------------------------------------------------------------------------

def ema_(key, query, beta):
    """theta_k = beta theta_k + (1 - beta) theta_q over every parameter (not buffers)."""
    kp, qp = key.params(), query.params()
    assert list(kp) == list(qp)
    with torch.no_grad():
        for n in kp:
            kp[n].mul_(beta).add_(qp[n], alpha=1.0 - beta)


def cell_masks(mask, hp, wp, pixel_threshold, cell_threshold):
    """(B,1,H,W) pixel masks -> (B, hp*wp) 0/1 (1 = fake location), row-major."""
    binm = (mask.double() > pixel_threshold).double()
    frac = F.adaptive_avg_pool2d(binm, (hp, wp))      # area pooling
    return (frac > cell_threshold).flatten(1).to(torch.int64), frac.flatten(1)


def loss_ce(z, y):
    return F.binary_cross_entropy_with_logits(z.reshape(-1), y.double(), reduction='mean')


def valid_rows(queue, count):
    """Occupied rows of a ring buffer that only grows: rows [0, count) until
    it is full, then all of them."""
    return queue[:int(count)]


def loss_inter(q, k, y, qr, qr_count, qf, qf_count, tau):
    per = []
    for b in range(q.shape[0]):
        neg = valid_rows(qf, qf_count) if int(y[b]) == 0 else valid_rows(qr, qr_count)
        pos = (q[b] * k[b]).sum() / tau
        logits = torch.cat([pos.reshape(1), (neg @ q[b]) / tau])
        per.append(torch.logsumexp(logits, 0) - logits[0])
    return torch.stack(per).mean()


def intra_terms(feat, y, cell, tau):
    """Per-image L_r (reals) and L_f (fakes); zeros for the other class."""
    b_, c, h, w = feat.shape
    L = h * w
    u = F.normalize(feat.flatten(2).transpose(1, 2), p=2.0, dim=2, eps=NORM_EPS)   # (B, L, C)
    s = u @ u.transpose(1, 2) / tau                                                  # (B, L, L)
    lr, lf = [], []
    zero = feat.sum() * 0.0
    for b in range(b_):
        if int(y[b]) == 0:
            lr.append(-(torch.logsumexp(s[b].reshape(-1), 0) - 2.0 * math.log(L) - 1.0 / tau))
            lf.append(zero)
        else:
            fk = cell[b].bool()
            r = ~fk
            lr.append(zero)
            if r.any() and fk.any():
                la = torch.logsumexp(s[b][r][:, r].reshape(-1), 0)
                lb = torch.logsumexp(s[b][fk][:, r].reshape(-1), 0)
                lf.append(torch.logaddexp(la, lb) - la)
            else:
                lf.append(zero)
    return torch.stack(lr), torch.stack(lf)


def loss_intra(feat, y, cell, tau, reduction='mean'):
    lr, lf = intra_terms(feat, y, cell, tau)
    d = feat.shape[0] if reduction == 'mean' else 1
    return (lr.sum() + lf.sum()) / d, lr.sum() / d, lf.sum() / d


def new_state(q_=Q, L=9):
    return dict(queue_real=torch.zeros(q_, L, dtype=torch.float64), queue_real_count=0, queue_real_ptr=0,
                queue_fake=torch.zeros(q_, L, dtype=torch.float64), queue_fake_count=0, queue_fake_ptr=0,
                proto_real=torch.zeros(L, dtype=torch.float64), proto_real_set=0,
                proto_fake=torch.zeros(L, dtype=torch.float64), proto_fake_set=0)


def copy_state(st):
    return {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in st.items()}


def cosine(a, b):
    return float(F.normalize(a, dim=0, eps=NORM_EPS) @ F.normalize(b, dim=0, eps=NORM_EPS))


def queue_update(st, k, y, mode, alpha, theta, topk=TOPK):
    """Prototype EMA, hard-sample selection and enqueue (in place).
    Returns (enqueued (B,) 0/1, cosines (B,) to the opposite prototype or nan
    where that prototype was never set)."""
    k = k.detach().double()
    names = {0: 'real', 1: 'fake'}
    # 1. prototypes, one EMA update per class present in the batch
    for c in (0, 1):
        idx = [b for b in range(k.shape[0]) if int(y[b]) == c]
        if not idx:
            continue
        kbar = k[idx].mean(0)
        p = 'proto_' + names[c]
        if st[p + '_set']:
            st[p] = alpha * st[p] + (1.0 - alpha) * kbar
        else:
            st[p] = kbar.clone()
            st[p + '_set'] = 1
    # 2. selection against the updated prototype of the opposite class
    cos = [float('nan')] * k.shape[0]
    sel = [False] * k.shape[0]
    for b in range(k.shape[0]):
        opp = 'proto_' + names[1 - int(y[b])]
        if st[opp + '_set']:
            cos[b] = cosine(k[b], st[opp])
    for c in (0, 1):
        idx = [b for b in range(k.shape[0]) if int(y[b]) == c]
        opp_set = st['proto_' + names[1 - c] + '_set']
        if mode == 'none' or not opp_set:
            for b in idx:
                sel[b] = True
        elif mode == 'threshold':
            for b in idx:
                sel[b] = cos[b] > theta
        elif mode == 'topk':
            ranked = sorted(idx, key=lambda b: (-cos[b], b))   # ties: lower batch index first
            for b in ranked[:topk]:
                sel[b] = True
        else:
            raise ValueError(mode)
    # 3. FIFO rings, batch order
    for b in range(k.shape[0]):
        if not sel[b]:
            continue
        qn = 'queue_' + names[int(y[b])]
        cap = st[qn].shape[0]
        st[qn][st[qn + '_ptr']] = k[b]
        st[qn + '_ptr'] = (st[qn + '_ptr'] + 1) % cap
        st[qn + '_count'] = min(st[qn + '_count'] + 1, cap)
    return torch.tensor([1 if s else 0 for s in sel], dtype=torch.int64), cos


def state_tensors(st, prefix, suffix=''):
    out = collections.OrderedDict()
    for k, v in st.items():
        name = prefix + k + suffix
        out[name] = v.clone() if isinstance(v, torch.Tensor) else torch.tensor(int(v), dtype=torch.int64)
    return out


# ----------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------

def make_masks(labels, rects, g):
    m = torch.zeros(len(labels), 1, IMG, IMG, dtype=torch.float32)
    for b, lab in enumerate(labels):
        if lab == 0:
            continue
        # low-amplitude noise, every value below the pixel threshold by >= 0.01
        m[b, 0] = torch.rand(IMG, IMG, generator=g) * 0.09
        r0, r1, c0, c1 = rects[b]
        m[b, 0, r0:r1, c0:c1] = 0.15 + 0.85 * torch.rand(r1 - r0, c1 - c0, generator=g)
    return m


def random_unit_rows(n, L, g):
    v = torch.randn(n, L, generator=g, dtype=torch.float32)
    return v / v.norm(dim=1, keepdim=True)


def proto_through(k_a, k_b, kbar_same, alpha, c_a, c_b, scale, g):
    """A float32 prototype P such that after P' = alpha P + (1-alpha) kbar_same
    (the EMA with the batch mean of the prototype's own class), cos(k_a, P')
    = c_a and cos(k_b, P') = c_b (both k unit vectors)."""
    a = F.normalize(k_a, dim=0)
    kb = F.normalize(k_b, dim=0)
    rho = float(a @ kb)
    rest = kb - rho * a
    s = float(rest.norm())
    bh = rest / s
    x = (c_b - c_a * rho) / s
    w = torch.randn(a.shape[0], generator=g, dtype=a.dtype)
    w = w - (w @ a) * a - (w @ bh) * bh
    w = w / w.norm()
    y2 = 1.0 - c_a * c_a - x * x
    assert y2 > 0, 'prototype not constructible: rho %.4f' % rho
    t = c_a * a + x * bh + math.sqrt(y2) * w
    p = (scale * t - (1.0 - alpha) * kbar_same) / alpha
    return p.float()


# ----------------------------------------------------------------------------
# one step
# ----------------------------------------------------------------------------

def step_losses(query, key, x1, x2, y, mask, st, hp, w, reduction='mean'):
    """Forward query, EMA, forward key, losses.  Returns a dict."""
    feat, z, e, q = query.forward(x1.double())
    ema_(key, query, hp['beta'])
    with torch.no_grad():
        _, _, _, k = key.forward(x2.double())
    cell, frac = cell_masks(mask, feat.shape[2], feat.shape[3], hp['pixel_threshold'], hp['cell_threshold'])
    lce = loss_ce(z, y)
    linter = loss_inter(q, k, y, st['queue_real'], st['queue_real_count'], st['queue_fake'],
                        st['queue_fake_count'], hp['tau'])
    lintra, lintra_r, lintra_f = loss_intra(feat, y, cell, hp['tau'], reduction)
    total = w['ce'] * lce + w['inter'] * linter + w['intra'] * lintra
    return dict(feat=feat, z=z, e=e, q=q, k=k, cell=cell, frac=frac, ce=lce, inter=linter, intra=lintra,
                intra_r=lintra_r, intra_f=lintra_f, total=total)


def weights(phi):
    return {'ce': 1.0 - phi, 'inter': phi, 'intra': phi}


# ----------------------------------------------------------------------------
# sanity checks
# ----------------------------------------------------------------------------

def fd_check(fn, x, entries, h=1e-6, tol=1e-6, what=''):
    """Central differences of the scalar fn at a few entries of x (float64)."""
    x = x.detach().clone().double().requires_grad_(True)
    g, = torch.autograd.grad(fn(x), x)
    with torch.no_grad():
        for idx in entries:
            xp = x.detach().clone()
            xm = x.detach().clone()
            xp[idx] += h
            xm[idx] -= h
            num = (float(fn(xp)) - float(fn(xm))) / (2 * h)
            ana = float(g[idx])
            assert abs(num - ana) <= tol * max(1e-3, abs(num), abs(ana)), \
                '%s: finite difference at %s: numeric %.10g analytic %.10g' % (what, idx, num, ana)
    return g


def naive_intra(feat, y, cell, tau):
    """Direct sums of exponentials, no log-sum-exp (cross-check only)."""
    out = []
    b_, c, h, w = feat.shape
    L = h * w
    for b in range(b_):
        u = feat[b].reshape(c, L).T
        u = u / u.norm(dim=1, keepdim=True)
        e = torch.exp(u @ u.T / tau)
        if int(y[b]) == 0:
            out.append(-math.log(float(e.sum())) + math.log(L * L * math.exp(1.0 / tau)))
        else:
            fk = [i for i in range(L) if int(cell[b][i])]
            r = [i for i in range(L) if not int(cell[b][i])]
            if not fk or not r:
                out.append(0.0)
                continue
            a = sum(float(e[i, j]) for i in r for j in r)
            bb = sum(float(e[i, j]) for i in fk for j in r)
            out.append(-math.log(a / (a + bb)))
    return out


def naive_inter(q, k, y, qr, nr, qf, nf, tau):
    tot = 0.0
    for b in range(q.shape[0]):
        neg = qf[:nf] if int(y[b]) == 0 else qr[:nr]
        pos = math.exp(float(q[b] @ k[b]) / tau)
        den = pos + sum(math.exp(float(q[b] @ n) / tau) for n in neg)
        tot += -math.log(pos / den)
    return tot / q.shape[0]


# ----------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------

def common_meta():
    md = collections.OrderedDict()
    md['model'] = VARIANT
    md['builder'] = 'timm.models.efficientnet._gen_efficientnet'
    md['timm'] = __import__('timm').__version__
    md['torch'] = torch.__version__
    md['channel_multiplier'] = fmt(CH_MULT)
    md['depth_multiplier'] = fmt(DEPTH_MULT)
    md['drop_rate'] = fmt(0.0)
    md['drop_path_rate'] = fmt(0.0)
    md['bn_eps'] = fmt(1e-5)
    md['bn_momentum'] = fmt(0.1)
    md['heads'] = ('embed = Conv2d(C,1,1,bias) on the last feature map, flattened row-major to L, '
                   'q = x/max(||x||,1e-12); classifier = global average pool, dropout p=0, Linear(C,1), '
                   'BCE with logits')
    md['input'] = fmt((NB, 3, IMG, IMG))
    md['feature_hw'] = fmt((3, 3))
    md['L'] = '9'
    for k, v in HP.items():
        md[k] = fmt(v)
    md['norm_eps'] = fmt(NORM_EPS)
    md['queue_capacity'] = fmt(Q)
    md['intra_reduction'] = 'mean'
    md['compute_dtype'] = 'float64'
    md['location_order'] = 'row-major over (H\', W\'): i = h*W\' + w'
    md['mask_pooling'] = ('binarise m > pixel_threshold, average over each feature cell (area pooling, '
                          '32x32 pixels per cell here), fake location when the fraction > cell_threshold')
    return md


def make_step(out):
    hp = dict(HP)
    w = weights(hp['phi'])
    g = torch.Generator().manual_seed(seed_of('dcl/step/data'))
    query = new_net(seed_of('dcl/query'))
    q_init = f32_table(query)
    # key = query + 0.01 noise (parameters); running statistics perturbed too
    k_init = collections.OrderedDict()
    pnames = set(query.params())
    for n, v in q_init.items():
        if not v.is_floating_point():
            k_init[n] = v.clone()
        elif n.endswith('running_var'):
            k_init[n] = v * (1.0 + 0.05 * torch.rand(v.shape, generator=g))
        elif n.endswith('running_mean'):
            k_init[n] = v + 0.01 * torch.randn(v.shape, generator=g)
        else:
            assert n in pnames, n
            k_init[n] = v + 0.01 * torch.randn(v.shape, generator=g)
    key = new_net(seed_of('dcl/query'))
    set_table(key, k_init)
    set_table(query, q_init)

    v1 = torch.randn(NB, 3, IMG, IMG, generator=g)
    v2 = torch.randn(NB, 3, IMG, IMG, generator=g)
    y = torch.tensor(LABELS_A, dtype=torch.int64)
    mask = make_masks(LABELS_A, RECTS_A, g)

    st = new_state()
    st['queue_real'][:7] = random_unit_rows(7, 9, g).double()
    st['queue_real_count'], st['queue_real_ptr'] = 7, 7
    st['queue_fake'][:] = random_unit_rows(Q, 9, g).double()
    st['queue_fake_count'], st['queue_fake_ptr'] = Q, 5

    # ---- the step
    query.train()
    key.train()
    for p in query.params().values():
        p.grad = None
    r = step_losses(query, key, v1, v2, y, mask, st, hp, w)
    r['total'].backward()
    k = r['k']

    # prototypes: after the step's EMA, one fake key passes theta and one does
    # not; both real keys pass (so the top-k variant differs from threshold)
    ks = k.detach()
    kbar_r = ks[[b for b in range(NB) if LABELS_A[b] == 0]].mean(0)
    kbar_f = ks[[b for b in range(NB) if LABELS_A[b] == 1]].mean(0)
    fakes = [b for b in range(NB) if LABELS_A[b] == 1]
    reals = [b for b in range(NB) if LABELS_A[b] == 0]
    st['proto_real'] = proto_through(ks[fakes[0]], ks[fakes[1]], kbar_r, hp["alpha"], 0.6, 0.4, 0.8, g).double()
    st['proto_fake'] = proto_through(ks[reals[0]], ks[reals[1]], kbar_f, hp["alpha"], 0.55, 0.6, 0.7, g).double()
    st['proto_real_set'] = st['proto_fake_set'] = 1
    state_in = copy_state(st)

    gold = collections.OrderedDict()
    for n, v in q_init.items():
        gold['q.' + n] = v
    for n, v in k_init.items():
        gold['k.' + n] = v
    gold['v1'], gold['v2'], gold['label'], gold['mask'] = v1, v2, y, mask
    gold.update(state_tensors(state_in, ''))

    gold['q'] = r['q']
    gold['k'] = k
    gold['logits'] = r['z']
    gold['features'] = r['feat']
    gold['loss_ce'] = r['ce'].reshape(())
    gold['loss_inter'] = r['inter'].reshape(())
    gold['loss_intra'] = r['intra'].reshape(())
    gold['loss_intra_real'] = r['intra_r'].reshape(())
    gold['loss_intra_fake'] = r['intra_f'].reshape(())
    gold['loss_total'] = r['total'].reshape(())
    gold['cell_mask'] = r['cell']
    for n, p in query.params().items():
        gold['grad.' + n] = p.grad.detach().clone()
    for n, v in key.table().items():
        gold['k_after.' + n] = v.detach().clone()
    for n, v in query.buffers().items():
        gold['q_after.' + n] = v.detach().clone()

    enq, cos = queue_update(st, k, y, 'threshold', hp['alpha'], hp['theta'])
    gold.update(state_tensors(st, '', '_after'))
    gold['enqueued'] = enq
    margins = [abs(c - hp['theta']) for c in cos]

    # variants of the queue/prototype update alone, from the same state
    st_t = copy_state(state_in)
    enq_t, cos_t = queue_update(st_t, k, y, 'topk', hp['alpha'], hp['theta'], TOPK)
    gold.update(state_tensors(st_t, 'topk.', '_after'))
    gold['topk.enqueued'] = enq_t
    st_u = copy_state(state_in)
    st_u['proto_real_set'] = st_u['proto_fake_set'] = 0
    enq_u, cos_u = queue_update(st_u, k, y, 'threshold', hp['alpha'], hp['theta'])
    gold.update(state_tensors(st_u, 'unset.', '_after'))
    gold['unset.enqueued'] = enq_u
    st_o = copy_state(state_in)
    st_o['proto_real_set'] = st_o['proto_fake_set'] = 0
    y_o = torch.ones(NB, dtype=torch.int64)
    enq_o, _ = queue_update(st_o, k, y_o, 'threshold', hp['alpha'], hp['theta'])
    gold.update(state_tensors(st_o, 'allfake.', '_after'))
    gold['allfake.label'] = y_o
    gold['allfake.enqueued'] = enq_o
    margins += [abs(c - hp['theta']) for c in cos_u]

    # ---- sanity checks
    cell = r['cell']
    assert enq.tolist() == [1, 1, 0, 1], enq.tolist()               # both reals, first fake
    assert enq_t.tolist() == [0 if cos[0] < cos[3] else 1, 1, 0, 1 if cos[0] < cos[3] else 0], enq_t.tolist()
    assert enq_o.tolist() == [1, 1, 1, 1] and st_o['proto_real_set'] == 0 and st_o['queue_real_count'] == 7
    assert min(margins) > MIN_MARGIN, margins
    frac = r['frac']
    assert bool((frac == 0.5).any()), 'no cell with exactly half its pixels'
    for b in fakes:
        assert 0 < int(cell[b].sum()) < 9, 'fake %d needs real and fake locations' % b
    # '>' against '>=': the half-covered cells must make a difference
    assert bool(((frac >= 0.5).to(torch.int64) != cell).any())
    # the noise must matter for a '> 0' binarisation
    assert bool(((F.adaptive_avg_pool2d((mask.double() > 0).double(), (3, 3)).flatten(1) > 0.5)
                 .to(torch.int64) != cell).any())
    assert float(r['inter']) > 0.0
    assert st['queue_fake_count'] == Q and st['queue_fake_ptr'] == 6 and st['queue_real_ptr'] == 9

    feat = r['feat'].detach()
    qs, e = r['q'].detach(), r['e'].detach()
    tau = hp['tau']
    ni = naive_intra(feat, y, cell, tau)
    lr, lf = intra_terms(feat, y, cell, tau)
    for b in range(NB):
        got = float(lr[b] + lf[b])
        assert abs(got - ni[b]) < 1e-9 * max(1.0, abs(ni[b])), (b, got, ni[b])
    assert all(v > 0 for v in ni), ni
    ninter = naive_inter(qs, ks, y, state_in['queue_real'], state_in['queue_real_count'],
                         state_in['queue_fake'], state_in['queue_fake_count'], tau)
    assert abs(ninter - float(r['inter'])) < 1e-9 * max(1.0, ninter), (ninter, float(r['inter']))
    fd_check(lambda f: loss_intra(f, y, cell, tau)[0], feat,
             [(0, 3, 1, 2), (1, 17, 0, 0), (2, 200, 2, 1), (3, 64, 1, 1), (1, 5, 2, 2)], what='L_intra')

    def inter_of_e(ev):
        qv = F.normalize(ev, p=2.0, dim=1, eps=NORM_EPS)
        return loss_inter(qv, ks, y, state_in['queue_real'], state_in['queue_real_count'],
                          state_in['queue_fake'], state_in['queue_fake_count'], tau)
    fd_check(inter_of_e, e, [(0, 0), (1, 4), (2, 8), (3, 3)], what='L_inter')
    # the query's grad reached every trainable parameter
    for n, p in query.params().items():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), n
    assert float(gold['grad.embed.weight'].abs().sum()) > 0
    # EMA check against the formula
    for n in pnames:
        ref = hp['beta'] * k_init[n].double() + (1 - hp['beta']) * q_init[n].double()
        assert torch.allclose(gold['k_after.' + n], ref, rtol=0, atol=1e-15), n

    md = common_meta()
    md['w_ce'], md['w_inter'], md['w_intra'] = fmt(w['ce']), fmt(w['inter']), fmt(w['intra'])
    md['hard_mode'] = 'threshold'
    md['topk'] = fmt(TOPK)
    md['variants'] = ('topk.*: hard_mode topk (topk keys per class, ranked by cosine to the opposite '
                      'prototype, enqueued in batch order), same inputs; unset.*: hard_mode threshold with both '
                      'prototypes never set (proto_*_set = 0, their values unused), same queues; allfake.*: '
                      'labels allfake.label (all fake), both prototypes never set, same queues')
    md['contents'] = (
        'inputs: q.<name>, k.<name> (query/key tables, parameters and buffers), v1, v2, label (1 = fake), mask, '
        'queue_real, queue_real_count, queue_real_ptr (next write row), queue_fake, ..., proto_real, proto_real_set, '
        'proto_fake, proto_fake_set.  Step: query train forward on v1; EMA of the key parameters; key train forward '
        'on v2 without gradient; losses with the queues before the update; backward of loss_total.  Outputs: q, k, '
        'logits, features (forward_features of the query), loss_ce, loss_inter, loss_intra, loss_intra_real '
        '(sum of L_r over reals / B), loss_intra_fake (sum of L_f over fakes / B), loss_total, cell_mask (B,L), '
        'grad.<param>, k_after.<name> (key parameters after the EMA and running statistics after its forward), '
        'q_after.<buffer>, then the update: <state>_after and enqueued (B)')
    gold_out = os.path.join(out, 'dcl_step.safetensors')
    n = save(gold_out, gold, md)
    print('dcl_step: loss total %.6f ce %.6f inter %.6f intra %.6f (real %.6f fake %.6f); enqueued %s topk %s '
          'unset %s allfake %s; min margin %.4f; %d bytes' % (
              float(r['total']), float(r['ce']), float(r['inter']), float(r['intra']), float(r['intra_r']),
              float(r['intra_f']), enq.tolist(), enq_t.tolist(), enq_u.tolist(), enq_o.tolist(), min(margins), n))
    return n, q_init, gold


# ----------------------------------------------------------------------------
# trajectory
# ----------------------------------------------------------------------------

class AutocastNet(Net):
    """The network in float32 with its forward under CPU autocast to
    bfloat16 (PyTorch's own reduced-precision training); the outputs go to
    the losses in float64 like the reference's."""

    @staticmethod
    def of(net):
        return AutocastNet(net.body.float(), net.embed.float(), net.classifier.float())

    def forward(self, x):
        with torch.autocast('cpu', dtype=torch.bfloat16):
            feat, z, e, q = Net.forward(self, x.float())
        return feat.double(), z.double(), e.double(), q.double()


def run_traj(query, key, batches, hp):
    """TRAJ_STEPS Adam steps alternating the batches; returns the final
    queue state, the per-step record and the threshold margins."""
    opt = torch.optim.Adam(list(query.params().values()), **ADAM)
    st = new_state()
    rec = collections.defaultdict(list)
    margins = []
    query.train()
    key.train()
    for t in range(TRAJ_STEPS):
        x, y, m = batches[t % 2]
        phi = TRAJ_PHI[t]
        opt.zero_grad(set_to_none=True)
        r = step_losses(query, key, x, x, y, m, st, hp, weights(phi))
        r['total'].backward()
        opt.step()
        enq, cos = queue_update(st, r['k'], y, 'threshold', hp['alpha'], hp['theta'])
        margins += [abs(c - hp['theta']) for c in cos if not math.isnan(c)]
        for n in ('total', 'ce', 'inter', 'intra'):
            rec[n].append(float(r[n]))
        rec['enqueued'].append(enq)
        rec['qr'].append(st['queue_real_count'])
        rec['qf'].append(st['queue_fake_count'])
    return st, rec, margins


def make_traj(out, q_init, step_gold, perm=None):
    hp = dict(HP)
    g = torch.Generator().manual_seed(seed_of('dcl/traj/data'))
    query = new_net(seed_of('dcl/query'))
    key = new_net(seed_of('dcl/query'))
    set_table(query, q_init)
    set_table(key, q_init)
    xa, ya, ma = step_gold['v1'], step_gold['label'], step_gold['mask']
    xb = step_gold['v2'][list(perm if perm is not None else BATCH_B_ORDER)]
    yb = torch.tensor(LABELS_B, dtype=torch.int64)
    mb = make_masks(LABELS_B, RECTS_B, g)
    batches = [(xa, ya, ma), (xb, yb, mb)]

    st, rec, margins = run_traj(query, key, batches, hp)
    # the same run with PyTorch's own reduced precision: a float32 copy of
    # the network, its forward under CPU autocast to bfloat16
    qb, kb = AutocastNet.of(new_net(seed_of('dcl/query'))), AutocastNet.of(new_net(seed_of('dcl/query')))
    set_table(qb, q_init)
    set_table(kb, q_init)
    _, rec_bf16, _ = run_traj(qb, kb, batches, hp)
    query.train(False)
    with torch.no_grad():
        _, z_eval, _, _ = query.forward(xa.double())

    # sanity
    assert rec['inter'][0] == 0.0                      # empty queues at the start
    assert all(v > 0 for v in rec['inter'][1:]), rec['inter']
    assert all(v > 0 for v in rec['intra']), rec['intra']
    assert all(math.isfinite(v) for n in ('total', 'ce', 'inter', 'intra') for v in rec[n])
    assert min(margins) > MIN_MARGIN, min(margins)
    # both rings wrapped, and the threshold rejected some keys
    assert st['queue_real_count'] == Q and st['queue_fake_count'] == Q
    assert sum(rec['qr']) < sum(min(2 * (t + 1), Q) for t in range(TRAJ_STEPS)) or \
        sum(rec['qf']) < sum(min(2 * (t + 1), Q) for t in range(TRAJ_STEPS))

    gold = collections.OrderedDict()
    gold['traj.label_b'] = yb
    gold['traj.batch_b_order'] = torch.tensor(list(perm if perm is not None else BATCH_B_ORDER), dtype=torch.int64)
    gold['traj.mask_b'] = mb
    for n in ('total', 'ce', 'inter', 'intra'):
        gold['traj.loss_' + n] = torch.tensor(rec[n], dtype=torch.float64)
        gold['traj.torch_bf16_loss_' + n] = torch.tensor(rec_bf16[n], dtype=torch.float64)
    gold['traj.phi'] = torch.tensor(TRAJ_PHI, dtype=torch.float64)
    gold['traj.enqueued'] = torch.stack(rec['enqueued'])
    gold['traj.queue_real_count_per_step'] = torch.tensor(rec['qr'], dtype=torch.int64)
    gold['traj.queue_fake_count_per_step'] = torch.tensor(rec['qf'], dtype=torch.int64)
    gold.update(state_tensors(st, 'traj.'))
    gold['traj.final_eval_logits'] = z_eval

    md = common_meta()
    md['hard_mode'] = 'threshold'
    md['steps'] = fmt(TRAJ_STEPS)
    md['phi_per_step'] = fmt(TRAJ_PHI)
    md['weights'] = 'w_ce = 1 - phi, w_inter = w_intra = phi'
    md['optimizer'] = ('torch.optim.Adam lr=%r betas=%r,%r eps=%r weight_decay=%r (L2 added to the gradient) over '
                       'every query parameter (timm body, embed, classifier)' % (
                           ADAM['lr'], ADAM['betas'][0], ADAM['betas'][1], ADAM['eps'], ADAM['weight_decay']))
    md['start'] = ('query table = dcl_step.safetensors q.*; key table = copy of it (parameters and buffers); empty '
                   'queues of capacity %d (count 0, ptr 0); prototypes never set' % Q)
    md['batches'] = ('step t uses batch A when t is even, batch B when odd; views off (v1 = v2 = x).  Batch A = '
                     'dcl_step.safetensors v1, label, mask.  Batch B images = dcl_step.safetensors v2 '
                     'in the order traj.batch_b_order (image i of batch B = v2[order[i]]), labels traj.label_b, '
                     'masks traj.mask_b')
    md['step_order'] = ('zero grad; query train forward; EMA of the key parameters (beta); key train forward without '
                        'gradient; losses (queues before the update); backward; Adam step; prototype/queue update '
                        'with that step\'s keys')
    md['contents'] = ('traj.loss_total/ce/inter/intra (per step, before that step\'s optimizer update), '
                      'traj.torch_bf16_loss_total/ce/inter/intra (the same run with the network in float32 and '
                      'its forward under torch.autocast(cpu, bfloat16)), traj.phi, '
                      'traj.enqueued (steps, B), traj.queue_*_count_per_step (after each update), final state '
                      'traj.queue_real, traj.queue_real_count, traj.queue_real_ptr, traj.queue_fake, ..., '
                      'traj.proto_real, traj.proto_real_set, traj.proto_fake, traj.proto_fake_set, and '
                      'traj.final_eval_logits (query in eval mode on batch A after the 10 steps)')
    n = save(os.path.join(out, 'dcl_traj.safetensors'), gold, md)
    print('dcl_traj: total %s' % ' '.join('%.5f' % v for v in rec['total']))
    print('          inter %s' % ' '.join('%.5f' % v for v in rec['inter']))
    print('          intra %s' % ' '.join('%.5f' % v for v in rec['intra']))
    print('          queue counts real %s fake %s; min margin %.4f; %d bytes' % (rec['qr'], rec['qf'],
                                                                                min(margins), n))
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default='tests/fixtures/dcl')
    a = ap.parse_args()
    n, q_init, step_gold = make_step(a.out)
    n += make_traj(a.out, q_init, step_gold)
    print('total %d bytes' % n)


if __name__ == '__main__':
    main()
