"""CUDA against CPU, float32: the deterministic forward passes whose CPU results the parity tests hold to upstream
(tests/test_generate_parity.py, 1e-5 against upstream's fixtures). If CUDA matches CPU within the tolerance below, the
parity carries over to the GPU. Sampling is left out on purpose: CUDA's random stream is not CPU's.

    python bench/gpu_parity.py [--device cuda:0] [--atol 1e-4]

Prints one line per check (max |difference|) and exits 1 if any check is outside the tolerance. TF32 is switched off:
it trades the float32 mantissa for speed and would need a tolerance near 1e-2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda:0", help="device compared with the CPU")
    p.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance (and relative, 1e-4)")
    args = p.parse_args(argv)

    import torch

    from src.config import MaskTransConfig, ResTransConfig, VQConfig
    from src.models.momask import build_mask_transformer, build_res_transformer, build_vq

    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("gpu_parity: no CUDA device visible to torch", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    vq_cfg = VQConfig(name="v", dataset_name="synth", nb_code=64, code_dim=32, output_emb_width=32, width=64, depth=2,
                      num_quantizers=3, down_t=2, stride_t=2)
    kw = {"dataset_name": "synth", "vq_name": "v", "latent_dim": 64, "n_layers": 2, "n_heads": 4, "ff_size": 128,
          "text_encoder": "embedded", "clip_dim": 512}
    models = {"vq": build_vq(vq_cfg).eval(),
              "mask": build_mask_transformer(MaskTransConfig(name="m", **kw), vq_cfg).eval(),
              "res": build_res_transformer(ResTransConfig(name="r", **kw), vq_cfg).eval()}
    g = torch.Generator().manual_seed(1)
    B, T = 4, 64
    x = torch.randn(B, T, vq_cfg.dataset_spec.dim_pose, generator=g)
    text = torch.randn(B, 512, generator=g)
    pad = torch.zeros(B, T // 4, dtype=torch.bool)
    pad[1, 10:] = True
    pad[3, 5:] = True

    ref_ids = None

    def run(device):
        m = {k: v.to(device) for k, v in models.items()}
        out = {}
        with torch.no_grad():
            ids, codes = m["vq"].encode(x.to(device))
            out["vq encode (code ids)"] = ids
            ids = ref_ids.to(device) if ref_ids is not None else ids  # the same ids on both sides from here on
            out["vq decode"] = m["vq"].forward_decoder(ids)
            out["mask transformer CFG logits"] = m["mask"].forward_with_cond_scale(
                ids[..., 0], text.to(device), pad.to(device), cond_scale=4.0)
            qids = torch.full((B,), 1, dtype=torch.long, device=device)
            history = m["vq"].quantizer.get_codebook_entry(ids[..., :1]).permute(0, 2, 1)  # (B, T', code_dim)
            out["residual transformer logits"] = m["res"].trans_forward(history, qids, text.to(device),
                                                                        pad.to(device))
        return {k: v.detach().cpu() for k, v in out.items()}

    ref = run(torch.device("cpu"))
    ref_ids = ref["vq encode (code ids)"]
    got = run(dev)
    bad = 0
    for k in ref:
        if ref[k].dtype in (torch.int64, torch.int32):
            n = int((ref[k] != got[k]).sum())
            ok = n == 0
            print(f"{'ok  ' if ok else 'FAIL'} {k}: {n} of {ref[k].numel()} ids differ")
        else:
            d = float((ref[k] - got[k]).abs().max())
            ok = torch.allclose(ref[k], got[k], atol=args.atol, rtol=args.atol)
            print(f"{'ok  ' if ok else 'FAIL'} {k}: max |cpu - {dev}| = {d:.2e} (atol {args.atol:g})")
        bad += not ok
    print(f"gpu_parity: {len(ref) - bad}/{len(ref)} checks within tolerance on {dev}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
