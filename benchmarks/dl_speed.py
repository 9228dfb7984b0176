"""Speed of the DL model: training images/second, inference ms/image, augmentation ms/image, peak memory.

Measures the network itself (plain torch: forward + backward + Adam step on random 3 x 128 x 128 batches;
eval-mode forward for inference) so the numbers say what a fold's training costs per image, separate from
Lightning's per-epoch overhead. Medians over several timed steps after warm-up: these machines are noisy.

    .venv/bin/python benchmarks/dl_speed.py                       # CPU, 2 threads, base width 8
    .venv/bin/python benchmarks/dl_speed.py --base-width 64       # the paper's network (~13.7 M parameters)
    .venv/bin/python benchmarks/dl_speed.py --device cuda --amp   # GPU check: base width 64, 300 steps, AMP

On `--device cuda` the defaults become the GPU check of issue 14: the paper-size CNN (base width 64) trained
for 300 steps, images/s and peak GPU memory printed. Without a visible CUDA device it refuses with exit
status 2 and says why (no test depends on a GPU).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time

import numpy as np
import torch


def machine_info(device: torch.device) -> dict:
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, amp: bool):
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=amp)


def time_training(net, device, batch_size: int, steps: int, warmup: int, amp: bool, lr: float = 1e-4) -> list[float]:
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda")
    loss_fn = torch.nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch_size, 3, 128, 128, generator=gen).to(device)
    y = (torch.rand(batch_size, generator=gen) > 0.5).float().to(device)
    net.train()
    times = []
    for step in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast(device, amp):
            loss = loss_fn(net(x).squeeze(1).float(), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        sync(device)
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    return times


@torch.inference_mode()
def time_inference(net, device, batch_size: int, repeats: int, amp: bool) -> list[float]:
    x = torch.rand(batch_size, 3, 128, 128, generator=torch.Generator().manual_seed(1)).to(device)
    net.eval()
    times = []
    for rep in range(repeats + 1):
        sync(device)
        t0 = time.perf_counter()
        with autocast(device, amp):
            net.head.out(net.embed(x))
        sync(device)
        if rep:  # the first pass warms up
            times.append(time.perf_counter() - t0)
    return times


def time_augmentation(n: int) -> list[float]:
    from cinescar.dl.data import ScarImageDataset, build_augmentation

    rng = np.random.default_rng(0)
    images = rng.random((8, 256, 256), dtype=np.float32)
    masks = (images > 0.7).astype(np.uint8)
    ds = ScarImageDataset(images, masks, np.zeros(8), augment=build_augmentation({}), seed=0)
    ds[0]
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        ds[i % 8]
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-width", type=int, default=None, help="CNN base width (default 8 on CPU, 64 on CUDA)")
    ap.add_argument("--kernel-size", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=8, help="training batch (paper 8)")
    ap.add_argument("--infer-batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=None, help="timed training steps (default 15 on CPU, 300 on CUDA)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5, help="timed inference batches")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--amp", action="store_true", help="mixed precision (float16 on CUDA, bfloat16 on CPU)")
    ap.add_argument("--aug-samples", type=int, default=40, help="augmented samples timed (0 = skip)")
    args = ap.parse_args(argv)

    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        print(f"dl_speed: invalid --device {args.device!r}: {exc}", file=sys.stderr)
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU-only build"
        print(f"dl_speed: --device {args.device} asked for, but torch {torch.__version__} ({build}) sees no CUDA "
              "device. Run it where a GPU is visible, with a CUDA build of torch (TORCH=cuda make setup); "
              "nothing was measured.", file=sys.stderr)
        return 2
    on_gpu = device.type == "cuda"
    args.base_width = args.base_width or (64 if on_gpu else 8)
    args.steps = args.steps or (300 if on_gpu else 15)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from cinescar.dl.network import ScarNet, count_parameters

    net = ScarNet(base_width=args.base_width, kernel_size=args.kernel_size).to(device)
    for key, value in machine_info(device).items():
        print(f"{key:>22}: {value}")
    print(f"{'parameters':>22}: {count_parameters(net):,} (base width {args.base_width}, kernel {args.kernel_size})")
    print(f"{'amp':>22}: {args.amp}")

    train = time_training(net, device, args.batch_size, args.steps, args.warmup, args.amp)
    step = statistics.median(train)
    print(f"{'training step':>22}: median {step * 1e3:.1f} ms per batch of {args.batch_size} "
          f"(min {min(train) * 1e3:.1f}, max {max(train) * 1e3:.1f}, n={len(train)})")
    print(f"{'training':>22}: {args.batch_size / step:.1f} images/s")
    infer = time_inference(net, device, args.infer_batch, args.repeats, args.amp)
    per_image = statistics.median(infer) / args.infer_batch
    print(f"{'inference':>22}: {per_image * 1e3:.2f} ms/image (batch {args.infer_batch}, median of {len(infer)})")
    if args.aug_samples:
        aug = time_augmentation(args.aug_samples)
        print(f"{'augmentation (CPU)':>22}: {statistics.median(aug) * 1e3:.2f} ms/image (MONAI, median of {len(aug)})")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"{'peak RSS':>22}: {rss_mb:.0f} MB")
    if device.type == "cuda":
        print(f"{'peak GPU memory':>22}: {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
