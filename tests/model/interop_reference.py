"""Independent reader of GPTQ / AWQ / compressed-tensors folders in numpy,
unpacking the way AutoGPTQ, AutoAWQ and compressed-tensors do (shift tables,
reverse order, strided unpacking), dequantizing every quantized layer and
comparing it bit for bit with the float weights QuantForge wrote to OURS.

usage: interop_reference.py FOLDER OURS.safetensors
prints "ok N" (N layers compared) or the first mismatch, exit status 1.
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64, "U8": np.uint8}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        out[name] = np.frombuffer(data[base + begin:base + end], dtype=DTYPES[entry["dtype"]]).reshape(entry["shape"])
    return out


def gptq_unpack_rows(packed, bits):
    """AutoGPTQ: qweight [in*bits/32, out] -> codes [in, out]."""
    p = packed.view(np.uint32)
    if bits in (2, 4, 8):
        wf = np.arange(0, 32, bits, dtype=np.uint32)
        w = (p[:, None, :] >> wf[None, :, None]) & ((1 << bits) - 1)
        return w.reshape(-1, p.shape[1]).astype(np.int64)
    # 3 bits: AutoGPTQ's 3-words-per-32-codes shift table and its two fix-ups.
    wf = np.array([[0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 0],
                   [0, 1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31],
                   [0, 2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 0]], dtype=np.uint32)
    w = p.reshape(p.shape[0] // 3, 3, 1, p.shape[1])
    w = (w >> wf[None, :, :, None]) & 7
    w[:, 0, 10] = (w[:, 0, 10] & 3) | ((w[:, 1, 0] << 2) & 4)
    w[:, 1, 11] = (w[:, 1, 11] & 1) | ((w[:, 2, 0] << 1) & 6)
    w = w & 7
    w = np.concatenate([w[:, 0, :11], w[:, 1, 1:12], w[:, 2, 1:11]], axis=1)
    return w.reshape(-1, p.shape[1]).astype(np.int64)


def gptq_layer(t, name, qc):
    bits = qc["bits"]
    codes = gptq_unpack_rows(t[name + ".qweight"], bits)  # [in, out]
    zeros = gptq_unpack_rows(np.ascontiguousarray(t[name + ".qzeros"].T), bits).T  # [groups, out]
    if qc.get("checkpoint_format", "gptq") == "gptq":
        zeros = (zeros + 1) & ((1 << bits) - 1)
    g = t[name + ".g_idx"].astype(np.int64)
    scales = t[name + ".scales"].astype(np.float32)
    w = scales[g] * (codes - zeros[g]).astype(np.float32)
    return w.T


def awq_layer(t, name, qc):
    reverse = [0, 4, 1, 5, 2, 6, 3, 7]
    shifts = np.arange(0, 32, 4, dtype=np.uint32)

    def unpack(p):
        u = (p.view(np.uint32)[:, :, None] >> shifts[None, None, :]) & 15
        u = u.reshape(p.shape[0], -1)
        order = np.arange(u.shape[1]).reshape(-1, 8)[:, reverse].reshape(-1)
        return u[:, order].astype(np.int64)

    codes = unpack(t[name + ".qweight"])  # [in, out]
    zeros = unpack(t[name + ".qzeros"])  # [groups, out]
    scales = t[name + ".scales"].astype(np.float32)
    group_size = qc["group_size"] if qc["group_size"] > 0 else codes.shape[0]
    g = np.arange(codes.shape[0]) // group_size
    return (scales[g] * (codes - zeros[g]).astype(np.float32)).T


def ct_unpack(value, bits, n, dim):
    """compressed-tensors unpack_from_int32: strided, then trimmed to n."""
    pf = 32 // bits
    mask = (1 << bits) - 1
    v = value.view(np.uint32)
    if dim == 1:
        out = np.zeros((v.shape[0], v.shape[1] * pf), dtype=np.int64)
        for i in range(pf):
            out[:, i::pf] = (v >> (bits * i)) & mask
        return out[:, :n] - (1 << (bits - 1))
    out = np.zeros((v.shape[0] * pf, v.shape[1]), dtype=np.int64)
    for i in range(pf):
        out[i::pf, :] = (v >> (bits * i)) & mask
    return out[:n, :] - (1 << (bits - 1))


def ct_layer(t, name, args):
    bits = args["num_bits"]
    out_f, in_f = (int(x) for x in t[name + ".weight_shape"])
    q = ct_unpack(t[name + ".weight_packed"], bits, in_f, 1)  # signed, [out, in]
    scale = t[name + ".weight_scale"].astype(np.float32)  # [out, groups]
    if args["symmetric"]:
        zp = np.zeros(scale.shape, dtype=np.int64)
    else:
        zp = ct_unpack(t[name + ".weight_zero_point"], bits, out_f, 0)
    group_size = args["group_size"] if args["strategy"] == "group" else in_f
    g = np.arange(in_f) // group_size
    return scale[:, g] * (q - zp[:, g]).astype(np.float32)


def main():
    folder, ours_path = sys.argv[1], sys.argv[2]
    qc = json.load(open(folder + "/config.json"))["quantization_config"]
    t = read_safetensors(folder + "/model.safetensors")
    ours = read_safetensors(ours_path)
    method = qc["quant_method"]
    for name, want in ours.items():
        if method == "gptq":
            got = gptq_layer(t, name, qc)
        elif method == "awq":
            got = awq_layer(t, name, qc)
        else:
            groups = [g for g in qc["config_groups"].values() if g["targets"] == ["Linear"] or name in g["targets"]]
            got = ct_layer(t, name, groups[0]["weights"])
        if got.shape != want.shape or not np.array_equal(got.view(np.uint32), want.view(np.uint32)):
            diff = np.argwhere(got != want)
            print("mismatch in", name, got.shape, want.shape, diff[:3].tolist())
            return 1
    print("ok", len(ours))
    return 0


if __name__ == "__main__":
    sys.exit(main())
