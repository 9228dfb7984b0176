"""Many exams, one start-up: `cinescar screen --bundle B --out-dir DIR` on a folder of exam folders or on every
patient of a manifest (issue 27).

The bundle is verified and loaded once, its pyradiomics extractor built once, and then each exam takes the path
a single `cinescar screen` gives it (`screen.screen_api` with the loaded bundle), so each exam's result is the one
screening it alone would give, number for number (tests/test_screen_batch.py). What a batch adds:

- one result per exam, `DIR/<exam>.json`, in the single-exam format, each written atomically as soon as the exam
  is done (an interrupted batch leaves whole files only); Grad-CAM overlays beside it (`DIR/<exam>_gradcam/`)
  unless `--no-gradcam`, as beside `--out` for one exam;
- an exam that cannot be screened (files missing, a check fails, anything raised while screening it) gets its
  own error record `DIR/<exam>.json` (format `cinescar-screening-error/1`: the exam, the error's type and
  message, no decision) and the others go on;
- nothing dropped silently: `DIR/summary.csv` (also printed) lists every entry of the folder or manifest with
  its status -- `screened`, `indeterminate` (predicted masks failed quality control: no decision, as for one
  exam), `error`, or `skipped` (a plain file in a folder of exam folders, not an exam) -- its probabilities and
  decisions, and its result file.

Workers: `workers` processes screen exams side by side (default: the usable CPUs, at most one per exam). They
are forked after the bundle is loaded, so they share it instead of loading it again (where fork is not
available, e.g. macOS and Windows, each worker loads the bundle once); each runs torch on one thread, which
gives the same probabilities as torch's default threads (the test compares them). A worker that dies (killed,
out of memory) fails only the exams it held: those are retried one by one in fresh workers, and an exam that
kills its worker again is recorded as an error.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cinescar.errors import CinescarError
from cinescar.io import atomic_write_text
from cinescar.models import IMAGE_MODELS as MODELS

log = logging.getLogger(__name__)

ERROR_FORMAT = "cinescar-screening-error/1"
"""An exam that could not be screened: its record in place of a result (no probability, no decision)."""
NO_DECISION = "no decision — the exam could not be screened"
SUMMARY = "summary.csv"
SUMMARY_COLUMNS = ["exam", "patient_id", "status", "n_images",
                   *[f"{m}_{what}" for m in MODELS for what in ("probability", "decision")],
                   "n_warnings", "error", "result", "seconds"]  # fmt: skip
STATUSES = ("screened", "indeterminate", "error", "skipped")


@dataclass(frozen=True)
class Entry:
    """One entry of a batch: an exam folder, or one patient of a manifest (or a plain file, `skipped`)."""

    name: str
    """What the summary calls it: the folder's name or the manifest's patient_id, as given."""
    stem: str
    """Its result's file name without `.json` (the name, made safe and unique within the batch)."""
    folder: Path | None = None
    manifest: Path | None = None
    skip: str | None = None
    """Why this entry is not an exam (a plain file): listed as `skipped`, never screened."""
    error: str | None = None
    """Why this exam cannot be screened before it is read (a patient_id on several manifest rows)."""


def _safe_stems(names: list[str]) -> list[str]:
    """File stems for the names: characters outside [A-Za-z0-9_-] become '_', repeats get '-2', '-3', ..."""
    stems, seen = [], set()
    for name in names:
        base = re.sub(r"[^A-Za-z0-9_-]", "_", name) or "exam"
        stem, k = base, 1
        while stem.lower() in seen or stem.lower() == Path(SUMMARY).stem:
            k += 1
            stem = f"{base}-{k}"
        seen.add(stem.lower())
        stems.append(stem)
    return stems


def batch_entries(folder: str | Path | None = None, manifest: str | Path | None = None) -> list[Entry]:
    """The entries of a folder of exam folders (its subfolders, sorted by name; plain files listed as skipped) or
    of a manifest (its patients, in its order). A folder that is itself one exam is refused, not guessed at."""
    if (folder is None) == (manifest is None):
        raise CinescarError("give either a folder of exam folders or --manifest")
    if manifest is not None:
        from cinescar.cohort.contract import read_manifest

        manifest = Path(manifest)
        cohort = manifest.parent if manifest.name.endswith(".csv") else manifest
        names = read_manifest(cohort)["patient_id"].astype(str).tolist()
        counts = pd.Series(names).value_counts()
        out = []
        for name, stem in zip(names, _safe_stems(names)):
            again = (f"patient_id {name!r} is on {counts[name]} rows of the manifest: which exam is meant is not "
                     "clear, none of them is screened") if counts[name] > 1 else None
            out.append(Entry(name, stem, manifest=cohort / "manifest.csv", error=again))
        return out
    from cinescar.screening.screen import EXAM_NAMES

    folder = Path(folder)
    if not folder.is_dir():
        raise CinescarError(f"{folder} is not a folder of exam folders")
    children = sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)
    stems_of_an_exam = {s.lower() for s in EXAM_NAMES.values()}
    if any(p.name.split(".", 1)[0].lower() in stems_of_an_exam for p in children):
        raise CinescarError(f"{folder} is one exam folder (it holds ED/ES entries), not a folder of exam folders: "
                            "screen it without --out-dir (--out FILE writes its result)")
    if not children:
        raise CinescarError(f"{folder} holds no exam folders")
    return [Entry(p.name, stem, folder=p, skip=None if p.is_dir() else "a plain file, not an exam folder")
            for p, stem in zip(children, _safe_stems([p.name for p in children]))]


# -- the worker: the loaded bundle and the options, set before the workers fork (or by their initializer) --
_STATE: dict[str, Any] = {}


def _init_state(bundle, out_dir: str, no_gradcam: bool, gradcam_images: int | None, allow_outside: bool,
                threads: int | None, load: bool = False) -> None:
    """The worker's state; `load`: `bundle` is (folder, digest), loaded here (a spawned worker, once)."""
    if load:
        from cinescar.screening.bundle import load_bundle

        bundle = load_bundle(bundle[0], expected_digest=bundle[1])
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    _STATE.update(bundle=bundle, out_dir=Path(out_dir), no_gradcam=no_gradcam, gradcam_images=gradcam_images,
                  allow_outside=allow_outside)


def _screen_one(entry: Entry) -> dict[str, Any]:
    """Screen one entry with the loaded bundle; never raises because of the exam. Returns the summary row and the
    JSON text of its result or error record."""
    from cinescar.screening.screen import INDETERMINATE, result_json, screen_api

    t0 = time.perf_counter()
    cam = None if _STATE["no_gradcam"] else _STATE["out_dir"] / f"{entry.stem}_gradcam"
    try:
        if entry.manifest is not None:
            result = screen_api(_STATE["bundle"], manifest=entry.manifest, patient=entry.name, gradcam_dir=cam,
                                gradcam_images=_STATE["gradcam_images"], no_gradcam=cam is None,
                                allow_outside_paths=_STATE["allow_outside"])
        else:
            result = screen_api(_STATE["bundle"], entry.folder, patient_id=entry.name, gradcam_dir=cam,
                                gradcam_images=_STATE["gradcam_images"], no_gradcam=cam is None)
    except Exception as exc:  # noqa: BLE001 - one exam's failure, whatever it is, is that exam's record only
        return _error_row(entry, exc, time.perf_counter() - t0)
    indeterminate = any(m["decision"] == INDETERMINATE for m in result["models"].values())
    row = {"exam": entry.name, "patient_id": result["patient_id"],
           "status": "indeterminate" if indeterminate else "screened", "n_images": len(result["images"]),
           **{f"{m}_{w}": result["models"][m][k] for m in MODELS for w, k in (("probability", "probability"),
                                                                               ("decision", "decision"))},
           "n_warnings": len(result["warnings"]), "error": "", "result": f"{entry.stem}.json",
           "seconds": round(time.perf_counter() - t0, 3)}
    return {"row": row, "json": result_json(result)}


def _error_row(entry: Entry, exc: BaseException | str, seconds: float, kind: str = "WorkerDied"
               ) -> dict[str, Any]:  # fmt: skip
    import json

    if isinstance(exc, str):
        message = exc
    else:
        kind = type(exc).__name__
        message = " ".join(str(exc).split())
        if not isinstance(exc, CinescarError):
            message = f"internal error ({message[:300]}); screen this exam alone with --debug for the traceback"
    record = {"format": ERROR_FORMAT, "exam": entry.name,
              "source": str(entry.folder if entry.folder is not None else entry.manifest),
              "status": "error", "error": kind, "message": message, "decision": NO_DECISION}
    row = {"exam": entry.name, "patient_id": "", "status": "error", "n_images": 0,
           **{f"{m}_{w}": (None if w == "probability" else NO_DECISION) for m in MODELS
              for w in ("probability", "decision")},
           "n_warnings": 0, "error": f"{kind}: {message}", "result": f"{entry.stem}.json",
           "seconds": round(seconds, 3)}
    return {"row": row, "json": json.dumps(record, indent=2, ensure_ascii=False)}


def _skipped_row(entry: Entry) -> dict[str, Any]:
    return {"row": {"exam": entry.name, "patient_id": "", "status": "skipped", "n_images": 0,
                    **{f"{m}_{w}": None for m in MODELS for w in ("probability", "decision")},
                    "n_warnings": 0, "error": entry.skip, "result": "", "seconds": 0.0}, "json": None}


# ------------------------------------------------------------------------------------------------ the batch


@dataclass
class BatchResult:
    summary: pd.DataFrame
    """One row per entry, in the folder's or manifest's order (`SUMMARY_COLUMNS`)."""
    startup_s: float
    """Bundle verification and load, extractor built, workers started."""
    screening_s: float
    """From the first exam handed out to the last result written."""
    workers: int

    @property
    def exams_per_minute(self) -> float:
        n = int((self.summary["status"] != "skipped").sum())
        return 60.0 * n / self.screening_s if self.screening_s > 0 else float("nan")


def screen_batch(bundle: str | Path, folder: str | Path | None = None, *, manifest: str | Path | None = None,
                 out_dir: str | Path, workers: int | None = None, no_gradcam: bool = False,
                 gradcam_images: int | None = None, bundle_sha256: str | None = None,
                 allow_outside_paths: bool = False, torch_threads: int | None = None,
                 on_result: Callable[[dict], None] | None = None) -> BatchResult:
    """Screen every exam of `folder` (a folder of exam folders) or `manifest` into `out_dir` (module docstring).

    `workers`: processes screening side by side (default: usable CPUs, at most one per exam; 1 screens in this
    process). `torch_threads`: torch's threads in each worker (default 1 with several workers, torch's own
    default in this process). `on_result(row)` is called as each exam's summary row is written.
    """
    import multiprocessing

    from cinescar.screening.bundle import load_bundle

    t0 = time.perf_counter()
    entries = batch_entries(folder, manifest)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded = load_bundle(bundle, expected_digest=bundle_sha256)  # a bad bundle stops the batch: nothing to screen
    loaded.extractor()  # built once, before the workers fork
    exams = [e for e in entries if e.skip is None and e.error is None]
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n_workers = max(1, min(int(workers or usable), len(exams) or 1))
    position = {id(e): i for i, e in enumerate(entries)}
    rows: list[dict | None] = [None] * len(entries)

    def record(entry: Entry, done: dict) -> None:
        if done["json"] is not None:
            atomic_write_text(out_dir / f"{entry.stem}.json", done["json"] + "\n")
        rows[position[id(entry)]] = done["row"]
        log.info("exam %s: %s", entry.name, done["row"]["status"])
        if on_result is not None:
            on_result(done["row"])

    for entry in entries:
        if entry.skip is not None:
            record(entry, _skipped_row(entry))
        elif entry.error is not None:
            record(entry, _error_row(entry, entry.error, 0.0, kind="CohortError"))
    state = (str(out_dir), no_gradcam, gradcam_images, allow_outside_paths)
    if n_workers == 1:
        _init_state(loaded, *state, torch_threads)
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        for entry in exams:
            record(entry, _screen_one(entry))
    else:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
        forked = ctx.get_start_method() == "fork"
        init = (loaded if forked else (str(bundle), loaded.digest), *state,
                1 if torch_threads is None else torch_threads, not forked)
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        retry = _run_pool(exams, n_workers, ctx, init, record)
        for entry in retry:  # their worker died: one by one, each in a fresh worker of its own
            done = _run_pool([entry], 1, ctx, init, record)
            if done:
                record(entry, _error_row(entry, "the screening process died twice while screening this exam "
                                                "(killed, out of memory, or a crash in a library)", 0.0))
    screening = time.perf_counter() - t1
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    atomic_write_text(out_dir / SUMMARY, summary.to_csv(index=False))
    return BatchResult(summary=summary, startup_s=startup, screening_s=screening, workers=n_workers)


def _run_pool(exams: list[Entry], n_workers: int, ctx, init: tuple, record) -> list[Entry]:
    """Screen `exams` in a pool; returns the exams lost to a worker that died (not recorded)."""
    lost: list[Entry] = []
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx, initializer=_init_state,
                             initargs=init) as pool:
        futures = {pool.submit(_screen_one, e): e for e in exams}
        for future in as_completed(futures):
            entry = futures[future]
            try:
                done = future.result()
            except BrokenProcessPool:
                lost.append(entry)
                continue
            record(entry, done)
    return lost


def summary_text(result: BatchResult) -> str:
    """The summary as `cinescar screen --out-dir` prints it: one line per entry, then the counts and the rate."""
    table = result.summary
    lines = [f"{'exam':<24} {'status':<13} {'images':>6}  " + "  ".join(f"{m:>9}" for m in MODELS) + "  note"]
    for r in table.itertuples(index=False):
        probs = "  ".join(f"{p:9.3f}" if isinstance(p, float) and p == p else f"{'-':>9}"
                          for p in (getattr(r, f"{m}_probability") for m in MODELS))
        note = r.error if r.error else (f"{r.n_warnings} warning(s)" if r.n_warnings else "")
        lines.append(f"{str(r.exam)[:24]:<24} {r.status:<13} {int(r.n_images):>6}  {probs}  {note}")
    counts = table["status"].value_counts()
    n = int((table["status"] != "skipped").sum())
    lines.append(", ".join(f"{int(counts.get(s, 0))} {s}" for s in STATUSES) + f" of {len(table)} entries")
    lines.append(f"start-up {result.startup_s:.1f} s; {n} exam(s) in {result.screening_s:.1f} s on {result.workers} "
                 f"worker(s) = {result.exams_per_minute:.1f} exams per minute after start-up")
    return "\n".join(lines)


def main(args) -> int:
    """`cinescar screen --out-dir DIR ...`: the batch, its summary printed; exit 2 when an exam got an error."""
    if not args.out_dir:
        raise CinescarError("--workers applies to many exams: give --out-dir DIR")
    refused = [f"--{name.replace('_', '-')}" for name in ("patient", "patient_id", "out", "gradcam_dir", "phases",
                                                          "series", "dicom_out") if getattr(args, name, None)]
    if refused:
        raise CinescarError(f"{', '.join(refused)} name(s) one exam; with --out-dir every exam is screened (its "
                            "result and Grad-CAM overlays go to DIR/<exam>.json and DIR/<exam>_gradcam/)")
    if args.workers is not None and args.workers < 1:
        raise CinescarError("--workers must be at least 1")
    result = screen_batch(args.bundle, args.exam, manifest=args.manifest, out_dir=args.out_dir,
                          workers=args.workers, no_gradcam=args.no_gradcam, gradcam_images=args.gradcam_images,
                          bundle_sha256=args.bundle_sha256, allow_outside_paths=args.allow_outside_paths)
    print(summary_text(result))
    print(f"results and {SUMMARY}: {args.out_dir}")
    return 2 if (result.summary["status"] == "error").any() else 0
