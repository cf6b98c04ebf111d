#!/usr/bin/env python3
"""Independent GPTQ reference (Frantar et al., 2022, Algorithm 1) in float64 numpy.

Written from the paper, not from src/algo: no lazy blocks (every column's error
is spread over all later columns at once), numpy's own Cholesky and inverse,
float64 weights. The quantizer follows QuantForge's integer rules
(src/quant/affine.cpp): parameters computed in float32 from the group's
values, codes by round-half-to-even, dequantized values scale * (q - zp) in
float32.

usage: gptq_reference.py WEIGHTS.f32 HESSIAN.f64 ROWS COLS BITS sym|asym GROUP ACT_ORDER DAMP OUT.f32
  GROUP 0 means one group per row (channel); ACT_ORDER 0/1 (static groups).
  OUT.f32 receives the dequantized weights [ROWS, COLS]; the damping used is
  printed on stdout.
"""
import sys

import numpy as np

F32_MIN = np.float32(np.finfo(np.float32).tiny)


def code_range(bits, sym):
    if sym:
        return -(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1


def finish_scale(s):
    s = np.float32(s)
    return np.float32(1.0) if s == 0 else max(s, F32_MIN)


def group_params(values, bits, sym):
    """(scale, zero point) for one group, as float32 arithmetic gives them."""
    v = values.astype(np.float32)
    lo = min(np.float32(v.min()), np.float32(0))
    hi = max(np.float32(v.max()), np.float32(0))
    qmin, qmax = code_range(bits, sym)
    if sym:
        amax = max(-lo, hi)
        return finish_scale(amax / np.float32(qmax)), 0
    span = (hi * np.float32(0.5) - lo * np.float32(0.5)) / np.float32(qmax - qmin) * np.float32(2)
    scale = finish_scale(span)
    zp = int(np.clip(np.float32(qmin) - np.rint(lo / scale), qmin, qmax))
    return scale, zp


def quantize(x, scale, zp, bits, sym):
    """On-grid values (float32 grid points, returned as float64) of a column."""
    qmin, qmax = code_range(bits, sym)
    q = np.clip(np.rint(x / np.float64(scale)) + zp, qmin, qmax)
    return (np.float32(scale) * (q - zp).astype(np.float32)).astype(np.float64)


def gptq(w, h, bits, sym, group, act_order, damp):
    rows, cols = w.shape
    w = w.astype(np.float64).copy()
    h = h.copy()
    dead = np.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    g = group if group > 0 else cols
    n_groups = (cols + g - 1) // g
    params = [[None] * n_groups for _ in range(rows)]
    if act_order or group == 0:  # fixed before the sweep, from the original weights
        for r in range(rows):
            for k in range(n_groups):
                params[r][k] = group_params(w[r, k * g:(k + 1) * g], bits, sym)
    perm = np.argsort(-np.diag(h), kind="stable") if act_order else np.arange(cols)

    hp = h[np.ix_(perm, perm)]
    mean = np.mean(np.diag(hp))
    used = damp
    for _ in range(5):
        try:
            hinv = np.linalg.inv(hp + used * mean * np.eye(cols))
            u = np.linalg.cholesky(hinv).T  # upper: u.T @ u == hinv
            break
        except np.linalg.LinAlgError:
            used *= 10
    else:
        raise SystemExit("Cholesky failed")

    wp = w[:, perm]
    out = np.zeros_like(wp)
    for k in range(cols):
        c = perm[k]
        if not act_order and group > 0 and c % g == 0:
            for r in range(rows):
                params[r][c // g] = group_params(wp[r, k:k + g], bits, sym)
        q = np.array([quantize(wp[r, k], *params[r][c // g], bits, sym) for r in range(rows)])
        out[:, k] = q
        err = (wp[:, k] - q) / u[k, k]
        wp[:, k + 1:] -= np.outer(err, u[k, k + 1:])
    result = np.zeros_like(out)
    result[:, perm] = out
    return result, used


def main():
    wpath, hpath, rows, cols, bits, sym, group, act, damp, opath = sys.argv[1:]
    rows, cols, bits, group = int(rows), int(cols), int(bits), int(group)
    w = np.fromfile(wpath, dtype=np.float32).reshape(rows, cols)
    h = np.fromfile(hpath, dtype=np.float64).reshape(cols, cols)
    q, used = gptq(w, h, bits, sym == "sym", group, act == "1", float(damp))
    q.astype(np.float32).tofile(opath)
    print(used)


if __name__ == "__main__":
    main()
