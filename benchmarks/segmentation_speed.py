"""Training and inference speed of the segmentation network (issue 22), in slices per second.

    .venv/bin/python benchmarks/segmentation_speed.py [--channels 8,16,32,64,128] [--threads 2] [--device cpu]

Times `train_network`'s own step (DiceCE, Adam, crops + augmentation) on random fields with ring labels, and
the ensemble's inference on whole 256 x 256 fields; prints the medians of --repeats, with the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", default="8,16,32,64,128")
    ap.add_argument("--residual-units", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--slices", type=int, default=160, help="training slices per timed epoch")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch

    from cinescar.config import load_config
    from cinescar.segmentation.inference import FieldSettings, Segmenter
    from cinescar.segmentation.labels import reference_labels
    from cinescar.segmentation.network import network_params
    from cinescar.segmentation.train import train_network

    cfg = load_config()["segmentation"] | {"channels": [int(c) for c in args.channels.split(",")],
                                           "residual_units": args.residual_units, "threads": args.threads,
                                           "device": args.device, "max_epochs": 1, "patience": 0}
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:256, :256]
    r = np.hypot(yy - 128, xx - 128)
    ring = ((r > 20) & (r < 30)).astype(np.uint8)
    labels = np.repeat(reference_labels(ring[None]), args.slices, 0)
    fields = (rng.random((args.slices, 256, 256)) * 0.3 + 0.5 * (labels > 0)).astype(np.float16)
    params = network_params(cfg)
    train_rates, infer_rates = [], []
    for rep in range(args.repeats):
        res = train_network(fields, labels, fields[:0], labels[:0], params, cfg, seed=rep)
        train_rates.append(res.slices_per_second)
        seg = Segmenter([(params, res.state_dict)], FieldSettings(), threads=args.threads)
        t = time.perf_counter()
        seg.probabilities(fields[:48].astype(np.float32))
        infer_rates.append(48 / (time.perf_counter() - t))
    n_params = sum(p.numel() for p in __import__("cinescar.segmentation.network", fromlist=["x"]).build_network(
        params).parameters())
    print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, device {args.device}, threads {args.threads}")
    print(f"network: channels {cfg['channels']}, residual units {args.residual_units}, {n_params / 1e6:.2f} M "
          f"parameters; training crop {cfg['crop']}, batch {cfg['batch_size']}")
    print(f"training: median {statistics.median(train_rates):.1f} slices/s ({', '.join(f'{v:.1f}' for v in train_rates)})")
    print(f"inference (256 x 256 fields, one network): median {statistics.median(infer_rates):.1f} slices/s "
          f"({', '.join(f'{v:.1f}' for v in infer_rates)})")


if __name__ == "__main__":
    main()
