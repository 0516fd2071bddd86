#!/usr/bin/python3
"""Writes the metric and t-SNE goldens under tests/fixtures/metrics/.

  /usr/bin/python3 tools/make_metric_goldens.py [OUTDIR]

Metrics: every case_*.csv holds label,score (and for most cases
video,frame,face) rows; expected.json holds what scikit-learn (roc_auc_score,
average_precision_score, roc_curve) and numpy give for them, at frame level and
at video level (mean, max-mean).  Definitions (same as include/dcl/eval.h):
  - predicted fake <=> score >= threshold
  - EER: crossing of the piecewise-linear ROC with FPR = 1 - TPR; computed both
    by exact segment interpolation and by brentq on interp1d (checked equal)
  - eer_threshold: threshold of the vertex next to that crossing with the
    smaller |1 - TPR - FPR| (the earlier vertex on a tie), over the ROC without
    dropped vertices; null = +inf
  - acc_best: best accuracy over thresholds (+inf first, then distinct scores
    high to low); threshold_best: first one reaching it; null = +inf
  - tpr_at_fpr(t): max TPR over vertices with FPR <= t
  - video score: mean of the video's scores (mean), or mean over frames of the
    max over the frame's faces (max-mean); each mean adds the values in
    ascending order, then divides by the count.
t-SNE (tsne.json): a small clustered data set, sklearn's exact and kNN joint
probabilities, the exact KL gradient at a fixed embedding, trustworthiness of
that embedding, and the trustworthiness of sklearn's own TSNE embeddings.
"""
import csv
import io
import json
import os
import sys

import numpy as np
import sklearn
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from scipy.spatial.distance import squareform
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE, trustworthiness
from sklearn.manifold._t_sne import _joint_probabilities, _joint_probabilities_nn, _kl_divergence
from sklearn.metrics import average_precision_score, pairwise_distances, roc_auc_score, roc_curve
from sklearn.neighbors import NearestNeighbors

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "metrics")


def fnum(x):
    """JSON-safe float: infinities become None."""
    x = float(x)
    return None if np.isinf(x) else x


def eer_of(y, s):
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    thr = thr.astype(float).copy()
    thr[0] = np.inf  # sklearn 1.2 writes max + 1 for the (0,0) vertex
    P, N = int(y.sum()), int((1 - y).sum())
    # exact integer test of g = 1 - tpr - fpr, like the C code
    tps = np.rint(tpr * P).astype(np.int64)
    fps = np.rint(fpr * N).astype(np.int64)
    G = P * N - N * tps - P * fps
    k = int(np.argmax(G <= 0))
    g0, g1 = int(G[k - 1]), int(G[k])
    if g1 == 0:
        eer = fps[k] / N
    else:
        t = g0 / (g0 - g1)
        eer = (fps[k - 1] + t * (fps[k] - fps[k - 1])) / N
    eer_thr = thr[k - 1] if g0 <= abs(g1) else thr[k]
    # the usual formula, on sklearn's default (dropped) curve
    f2, t2, _ = roc_curve(y, s)
    eer_b = brentq(lambda x: 1.0 - x - interp1d(f2, t2)(x), 0.0, 1.0, xtol=1e-14)
    assert abs(eer - eer_b) < 1e-9, (eer, eer_b)
    return eer, eer_thr


def metrics_of(y, s, threshold=0.5):
    y = np.asarray(y, dtype=np.int64)
    s = np.asarray(s, dtype=np.float64)
    auc = roc_auc_score(y, s)
    ap = average_precision_score(y, s)
    eer, eer_thr = eer_of(y, s)
    pred = s >= threshold
    acc = float(np.mean(pred == (y == 1)))
    tpr = float(np.mean(pred[y == 1]))
    tnr = float(np.mean(~pred[y == 0]))
    cands = np.r_[np.inf, np.unique(s)[::-1]]
    accs = np.array([np.mean((s >= c) == (y == 1)) for c in cands])
    kb = int(np.argmax(accs))
    fpr, tprs, _ = roc_curve(y, s, drop_intermediate=False)
    return {
        "n": int(len(y)), "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()),
        "auc": float(auc), "ap": float(ap), "eer": float(eer), "eer_threshold": fnum(eer_thr),
        "threshold": threshold, "acc": acc, "tpr": tpr, "tnr": tnr,
        "acc_best": float(accs[kb]), "threshold_best": fnum(cands[kb]),
        "tpr_at_fpr_1pct": float(tprs[fpr <= 0.01].max()),
        "tpr_at_fpr_0_1pct": float(tprs[fpr <= 0.001].max()),
    }


def roc_of(y, s, drop):
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=drop)
    thr = [None] + [float(t) for t in thr[1:]]
    return {"fpr": [float(v) for v in fpr], "tpr": [float(v) for v in tpr], "thresholds": thr}


def ordered_mean(vals):
    acc = 0.0
    for v in sorted(vals):
        acc += v
    return acc / len(vals)


def video_scores(rows, agg):
    """rows: list of dicts with video, frame, label, score. Pure python/numpy groupby."""
    by_video = {}
    for r in rows:
        by_video.setdefault(r["video"], []).append(r)
    ys, ss = [], []
    for v in sorted(by_video):
        rs = by_video[v]
        labs = {r["label"] for r in rs}
        assert len(labs) == 1
        if agg == "mean":
            sc = ordered_mean([r["score"] for r in rs])
        else:
            frames = {}
            for r in rs:
                frames[r["frame"]] = max(frames.get(r["frame"], -np.inf), r["score"])
            sc = ordered_mean(list(frames.values()))
        ys.append(labs.pop())
        ss.append(sc)
    return np.array(ys), np.array(ss)


def write_csv(path, rows, columns, quote_all=False, crlf=False, extra=False):
    buf = io.StringIO()
    w = csv.writer(buf, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
                   lineterminator="\r\n" if crlf else "\n")
    head = list(columns) + (["note"] if extra else [])
    w.writerow(head)
    for i, r in enumerate(rows):
        vals = []
        for c in columns:
            v = r[c]
            vals.append(repr(float(v)) if c == "score" else str(v))
        if extra:
            vals.append('free text, with "quotes"\nand a newline' if i % 7 == 0 else "")
        w.writerow(vals)
    with open(path, "w", newline="") as f:
        f.write(buf.getvalue())


def make_video_rows(rng, n_videos, p_fake, decimals, shift=0.25, faces=2, frames=(3, 8)):
    rows = []
    for v in range(n_videos):
        lab = int(rng.random() < p_fake)
        vname = "vid_%03d%s" % (v, "_fake" if lab else "")
        vbias = rng.normal(0, 1.0)
        for fr in range(int(rng.integers(frames[0], frames[1] + 1))):
            for face in range(int(rng.integers(1, faces + 1))):
                s = 1 / (1 + np.exp(-(rng.normal(0, 1.0) + (shift if lab else -shift) * 4 + vbias)))
                s = round(float(s), decimals) if decimals is not None else float(s)
                rows.append({"video": vname, "frame": "f%d" % fr, "face": face, "label": lab, "score": s})
    # clones of some videos with the other label: exact ties between videos
    # whose rows arrive in a different order
    for v in range(0, n_videos, 7):
        src = [r for r in rows if r["video"].startswith("vid_%03d" % v)]
        lab = 1 - src[0]["label"]
        for r in src:
            rows.append(dict(r, video="clone_%03d%s" % (v, "_fake" if lab else ""), label=lab))
    order = rng.permutation(len(rows))
    return [rows[i] for i in order]


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20220)
    cases = {}

    def add(name, rows, columns, video=True, roc=False, **fmt):
        write_csv(os.path.join(OUT, name + ".csv"), rows, columns, **fmt)
        y = np.array([r["label"] for r in rows])
        s = np.array([r["score"] for r in rows], dtype=np.float64)
        entry = {"file": name + ".csv", "frame": metrics_of(y, s)}
        if video:
            for agg in ("mean", "max-mean"):
                vy, vs = video_scores(rows, agg)
                entry["video_" + agg.replace("-", "_")] = metrics_of(vy, vs)
        if roc:
            entry["roc"] = roc_of(y, s, False)
            entry["roc_dropped"] = roc_of(y, s, True)
        cases[name] = entry

    cols = ["video", "frame", "face", "label", "score"]
    add("case_ties1", make_video_rows(rng, 60, 0.3, 1), cols, roc=True)
    add("case_ties2", make_video_rows(rng, 150, 0.8, 2), ["score", "face", "label", "frame", "video"], roc=True)
    add("case_cont", make_video_rows(rng, 80, 0.5, None), cols)
    # quoted, CRLF, extra column with commas/quotes/newlines, other column order
    add("case_quoted", make_video_rows(rng, 30, 0.5, 1), ["label", "video", "score", "frame", "face"],
        quote_all=True, crlf=True, extra=True, roc=True)
    # every score tied
    add("case_alltied", [{"label": int(i % 3 == 0), "score": 0.5} for i in range(21)], ["label", "score"],
        video=False, roc=True)
    # perfect separation and its inverse
    sep = [{"label": int(i >= 12), "score": round(0.05 * i, 2)} for i in range(20)]
    add("case_perfect", sep, ["label", "score"], video=False, roc=True)
    add("case_inverted", [{"label": 1 - r["label"], "score": r["score"]} for r in sep], ["label", "score"],
        video=False, roc=True)
    add("case_tiny", [{"label": 0, "score": 0.3}, {"label": 1, "score": 0.7}], ["label", "score"], video=False,
        roc=True)
    add("case_tiny_tied", [{"label": 1, "score": 0.4}, {"label": 0, "score": 0.4}], ["label", "score"],
        video=False, roc=True)
    # heavy imbalance with logit-like scores (negative values, threshold 0.5 still applied)
    imb = [{"label": 0, "score": round(float(rng.normal(-1, 1)), 2)} for _ in range(1500)]
    imb += [{"label": 1, "score": round(float(rng.normal(1.5, 1)), 2)} for _ in range(9)]
    order = rng.permutation(len(imb))
    add("case_imbalanced", [imb[i] for i in order], ["score", "label"], video=False, roc=True)

    meta = {"generator": "tools/make_metric_goldens.py", "sklearn": sklearn.__version__,
            "numpy": np.__version__, "cases": cases}
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1, allow_nan=False)

    # ------------------------------------------------------------- t-SNE
    trng = np.random.default_rng(7)
    n, d, perp = 60, 5, 10.0
    centers = trng.normal(0, 4, size=(3, d))
    X = (centers[np.arange(n) % 3] + trng.normal(0, 1, size=(n, d))).astype(np.float32)
    X64 = X.astype(np.float64)
    D = pairwise_distances(X64, squared=True)
    Pc = _joint_probabilities(D, perp, 0)
    P = squareform(Pc)
    k = min(n - 1, int(3.0 * perp + 1))
    knn = NearestNeighbors(n_neighbors=k, metric="euclidean").fit(X64)
    Dnn = knn.kneighbors_graph(mode="distance")
    Dnn.data **= 2
    Pnn = _joint_probabilities_nn(Dnn, perp, 0).toarray()
    Y = trng.normal(0, 2, size=(n, 2))
    kl, grad = _kl_divergence(Y.ravel().copy(), Pc, 1, n, 2)
    tw_fixed = trustworthiness(X64, Y, n_neighbors=5)
    tw_sk = {}
    for method in ("exact", "barnes_hut"):
        emb = TSNE(n_components=2, perplexity=perp, init="pca", learning_rate="auto", method=method,
                   random_state=0).fit_transform(X64)
        tw_sk[method] = float(trustworthiness(X64, emb, n_neighbors=5))
    # PCA initialisation (sklearn's scaling: first component std 1e-4; the
    # largest-magnitude score of each component positive, as svd_flip)
    n2, d2 = 120, 30
    scales = np.geomspace(5.0, 0.2, d2)
    basis, _ = np.linalg.qr(trng.normal(size=(d2, d2)))
    X2 = ((trng.normal(size=(n2, d2)) * scales) @ basis.T + 3.0).astype(np.float32)
    Z = PCA(n_components=2, svd_solver="full").fit_transform(X2.astype(np.float64))
    for c in range(2):
        if Z[np.argmax(np.abs(Z[:, c])), c] < 0:
            Z[:, c] = -Z[:, c]
    Z = Z / np.std(Z[:, 0]) * 1e-4
    tsne = {"generator": "tools/make_metric_goldens.py", "sklearn": sklearn.__version__,
            "pca_n": n2, "pca_d": d2, "pca_x": [float(v) for v in X2.ravel()],
            "pca_init": [float(v) for v in Z.ravel()],
            "n": n, "d": d, "perplexity": perp, "k": k,
            "x": [float(v) for v in X.ravel()], "p_exact": [float(v) for v in P.ravel()],
            "p_knn": [float(v) for v in Pnn.ravel()], "y": [float(v) for v in Y.ravel()],
            "kl": float(kl), "grad": [float(v) for v in grad],
            "trust_k": 5, "trust_fixed": float(tw_fixed), "trust_sklearn_tsne": tw_sk}
    with open(os.path.join(OUT, "tsne.json"), "w") as f:
        json.dump(tsne, f, allow_nan=False)
    print("wrote %d metric cases and tsne.json to %s" % (len(cases), OUT))


if __name__ == "__main__":
    main()
