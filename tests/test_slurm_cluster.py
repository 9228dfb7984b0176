"""The workflow on a real SLURM cluster: a single-node cluster from Debian's packages (tests/slurm/start-cluster.sh)
runs the tiny `.test` study submitted through `--profile profiles/slurm`; every job must go through sbatch and
show COMPLETED in `sacct`, and the results must equal the local run of the same config. The GPU requests the
executor plugin builds from the profile are checked line by line and against the cluster's `gpu` partition.

What this cannot prove (docs/cluster.md): a shared filesystem across nodes, a real GPU, a site's limits."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from workflow_runs import REPO, TEST_CONFIG

pytestmark = pytest.mark.slow

START = REPO / "tests" / "slurm" / "start-cluster.sh"
PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
LOCK = Path("/tmp/cinescar-slurm-test.lock")  # one cluster per machine: concurrent test sessions queue here
SACCT_FIELDS = "JobIDRaw,JobName%36,Comment%60,Partition,AllocTRES%60,State,ExitCode,Elapsed"


def cannot_install_reason() -> str | None:
    """Why this machine cannot have the cluster, or None. Only a missing precondition for installing the
    packages skips the test; a failed install or start on a machine that could have it is a failure."""
    if sys.platform != "linux":
        return f"SLURM test cluster needs Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "SLURM test cluster needs root (it installs Debian packages and writes /etc/slurm); CI runs as root"
    have = all(shutil.which(b) for b in ("slurmctld", "slurmd", "slurmdbd", "mariadbd", "munged"))
    if not have and not shutil.which("apt-get"):
        return "SLURM packages are not installed and there is no apt-get to install them"
    return None


@dataclass
class Cluster:
    state: Path
    account: str
    setup_seconds: float
    real_memory_mb: int


def _skip_loudly(reason: str):
    message = f"SLURM CLUSTER TEST SKIPPED: {reason}. The workflow was NOT run on SLURM."
    warnings.warn(message)
    sys.stderr.write(f"\n!!! {message}\n")
    pytest.skip(message)


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    reason = cannot_install_reason()
    if reason and os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the SLURM cluster test, but {reason}")  # CI runs as root on Debian
    if reason:
        _skip_loudly(reason)
    LOCK.touch(exist_ok=True)
    lock = LOCK.open("w")
    deadline = time.monotonic() + 1200
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:  # only on a shared development machine; CI has it to itself
            if time.monotonic() > deadline:
                lock.close()
                _skip_loudly(f"another test session on this machine held the one SLURM cluster ({LOCK}) for 20 min")
            time.sleep(2)
    state = tmp_path_factory.mktemp("slurm-cluster")
    env = {**os.environ, "CINESCAR_SLURM_DIR": str(state), "CINESCAR_SLURM_ACCOUNT": "cinescar"}
    t0 = time.monotonic()
    started = subprocess.run([str(START), "start"], env=env, capture_output=True, encoding="utf-8",
                             errors="replace", timeout=600)
    setup = time.monotonic() - t0
    try:
        assert started.returncode == 0, f"start-cluster.sh failed:\n{started.stdout[-3000:]}{started.stderr[-3000:]}"
        node = subprocess.run(["scontrol", "show", "node", "-o"], capture_output=True, encoding="utf-8", check=True)
        real = int(re.search(r"RealMemory=(\d+)", node.stdout).group(1))
        sys.stderr.write(f"\n[slurm] cluster up in {setup:.1f} s (install included when it was needed)\n")
        yield Cluster(state=state, account="cinescar", setup_seconds=setup, real_memory_mb=real)
    finally:
        stopped = subprocess.run([str(START), "stop"], env=env, capture_output=True, encoding="utf-8",
                                 errors="replace", timeout=120)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        assert stopped.returncode == 0, stopped.stderr[-2000:]


def real_gpu_present() -> bool:
    return any(Path("/dev").glob("nvidia[0-9]*"))


def site_profile(cluster: Cluster, dest: Path) -> Path:
    """The shipped profile adapted the way a site adapts it (docs/cluster.md): its account and partitions,
    memory requests that fit the node, and fast status checks. Everything else stays as shipped."""
    profile = yaml.safe_load(PROFILE.read_text(encoding="utf-8"))
    cap = cluster.real_memory_mb // 2

    def fit(res: dict) -> dict:
        res = dict(res)
        if "mem_mb" in res:
            res["mem_mb"] = min(int(res["mem_mb"]), cap)
        return res

    profile["default-resources"] = {**fit(profile["default-resources"]), "slurm_partition": "cpu",
                                    "slurm_account": cluster.account}
    rules = {}
    for rule, res in profile.get("set-resources", {}).items():
        res = fit(res)
        if res.get("slurm_partition") == "gpu" and real_gpu_present():
            # the local gpu partition's GPU is /dev/null: on a machine with a real GPU the job would see it
            # (CUDA_VISIBLE_DEVICES=0) and its numbers could differ from the local CPU run
            res.update(slurm_partition="cpu", gpu=0)
        rules[rule] = res
    profile["set-resources"] = rules
    profile["slurm-init-seconds-before-status-checks"] = 1
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
    return dest


# Snakemake as `python -m snakemake` runs it, with one change to the executor's status polling: the plugin (2.8.0)
# waits `slurm-init-seconds-before-status-checks` (1 s here, its minimum) after a poll that saw a job end, and 10 s
# more after each poll that saw none, up to 180 s (a constant in its code, no setting), so on this one-node cluster
# a job's end was noticed 0-31 s late, ~11 s on average (measured on the .test study): most of what the SLURM run
# waited for. Capping the wait at STATUS_BACKOFF_CAP_S seconds changes only when Snakemake looks, not what it
# submits or how it reads sacct. A site keeps the plugin's back-off, which spares its slurmdbd.
STATUS_BACKOFF_CAP_S = 2
CAPPED_STATUS_BACKOFF = f"""
import sys
from snakemake_interface_executor_plugins.executors.remote import RemoteExecutor
wait = RemoteExecutor.next_seconds_between_status_checks
RemoteExecutor.next_seconds_between_status_checks = wait.setter(
    lambda self, seconds: wait.fset(self, min(seconds, {STATUS_BACKOFF_CAP_S})))
sys.argv[0] = "snakemake"
from snakemake.cli import main
main()
"""


@dataclass
class SlurmRun:
    work: Path
    log: str
    seconds: float
    profile: dict
    submitted: dict[str, str]  # SLURM job id -> rule


@pytest.fixture(scope="session")
def slurm_run(slurm_cluster, tmp_path_factory):
    base = tmp_path_factory.mktemp("slurm-run")
    profile_dir = site_profile(slurm_cluster, base / "profile")
    work = base / "work"
    cmd = [sys.executable, "-c", CAPPED_STATUS_BACKOFF, "-s", str(REPO / "Snakefile"), "-d", str(work),
           "--profile", str(profile_dir), "--configfile", str(TEST_CONFIG), "--verbose"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=2400, cwd=base)  # ~26 min on a machine loaded x10
    seconds = time.monotonic() - t0
    log = proc.stdout + proc.stderr
    (base / "snakemake.log").write_text(log, encoding="utf-8")
    assert proc.returncode == 0, f"SLURM run failed (log: {base / 'snakemake.log'}):\n{log[-6000:]}"
    sys.stderr.write(f"\n[slurm] .test study through profiles/slurm: {seconds:.1f} s\n")
    # "Job 12 has been submitted with SLURM jobid 34 (log: .../rule_dl_train/fold1/34.log)."
    submitted = {m.group(1): m.group(2) for m in
                 re.finditer(r"has been submitted with SLURM jobid (\d+) \(log: .*?/rule_(\w+)/", log)}
    return SlurmRun(work=work, log=log, seconds=seconds,
                    profile=yaml.safe_load((profile_dir / "config.yaml").read_text()), submitted=submitted)


def sacct(job_ids) -> list[dict[str, str]]:
    out = subprocess.run(["sacct", "-X", "--parsable2", "--noheader", "-j", ",".join(job_ids),
                          f"--format={SACCT_FIELDS}"], capture_output=True, encoding="utf-8", check=True).stdout
    names = [f.split("%")[0] for f in SACCT_FIELDS.split(",")]
    return [dict(zip(names, line.split("|"))) for line in out.splitlines() if line.strip()]


def test_every_job_went_through_sbatch_and_completed(slurm_run):
    # every job Snakemake ran except the local target rule was submitted (`rule X:`/`checkpoint X:` vs `localrule X:`)
    ran = re.findall(r"^(?:rule|checkpoint) (\w+):$", slurm_run.log, flags=re.M)
    assert len(ran) >= 10, ran
    assert sorted(slurm_run.submitted.values()) == sorted(ran), (slurm_run.submitted, ran)
    rows = sacct(slurm_run.submitted)
    table = "\n".join("|".join(r.values()) for r in rows)
    sys.stderr.write(f"\n[slurm] sacct of the run ({len(rows)} jobs):\n{SACCT_FIELDS}\n{table}\n")
    assert {r["JobIDRaw"] for r in rows} == set(slurm_run.submitted), table
    assert all(r["State"] == "COMPLETED" and r["ExitCode"] == "0:0" for r in rows), table
    # sacct's comment names the rule (the plugin's --comment rule_<name>...)
    for r in rows:
        assert r["Comment"].startswith(f"rule_{slurm_run.submitted[r['JobIDRaw']]}"), r
    # the shipped profile's partitions were used; GPU rules got their GPU from the gpu partition
    for r in rows:
        res = slurm_run.profile["set-resources"].get(slurm_run.submitted[r["JobIDRaw"]], {})
        want = res.get("slurm_partition", slurm_run.profile["default-resources"]["slurm_partition"])
        assert r["Partition"] == want, r
        if res.get("gpu"):
            assert "gres/gpu=1" in r["AllocTRES"], r


def _results(run: Path) -> dict[Path, Path]:
    return {p.relative_to(run): p for p in (run / "results").rglob("*")
            if p.is_file() and not {"benchmarks", "mlflow"} & set(p.relative_to(run).parts)}


def _compared(rel: Path, frame: pd.DataFrame) -> bool:
    """Tables this test holds equal: probabilities, selected features, everything the DL model wrote."""
    return ("dl" in rel.parts or "select" in rel.name
            or any(re.fullmatch(r"(.+_)?prob(_.+)?", str(c).lower()) for c in frame.columns))


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def test_cluster_results_equal_the_local_run(slurm_run, killed_then_resumed):
    local = killed_then_resumed[0]
    ours, theirs = _results(slurm_run.work), _results(local)
    assert sorted(ours) == sorted(theirs), set(ours) ^ set(theirs)
    splits = [rel for rel in ours if rel.name == "splits.json"]
    assert splits
    for rel in splits:
        assert json.loads(ours[rel].read_text()) == json.loads(theirs[rel].read_text()), rel
    compared = []
    for rel in sorted(ours):
        if rel.suffix not in {".parquet", ".csv"}:
            continue
        a, b = _read(ours[rel]), _read(theirs[rel])
        if not _compared(rel, a):
            continue
        compared.append(rel)
        if "dl" in rel.parts:  # DL: bit-identical
            pd.testing.assert_frame_equal(a, b, check_exact=True, obj=str(rel))
            continue
        assert list(a.columns) == list(b.columns) and len(a) == len(b), rel
        for col in a.columns:
            if pd.api.types.is_float_dtype(a[col]):
                # probabilities to 1e-12; other numbers (coefficients) relative to their size
                rtol = 0 if re.fullmatch(r"(.+_)?prob(_.+)?", str(col).lower()) else 1e-12
                np.testing.assert_allclose(a[col].to_numpy(), b[col].to_numpy(), rtol=rtol, atol=1e-12,
                                           err_msg=f"{rel}:{col}")
            else:
                assert a[col].astype(str).tolist() == b[col].astype(str).tolist(), f"{rel}:{col}"
    names = {str(rel) for rel in compared}
    # not vacuous: each model's probabilities and both selections were among them
    for model in ("radiomics", "dl", "fusion"):
        assert f"results/{model}/predictions.parquet" in names, names
    assert sum("select" in n for n in names) >= 2, names
    # DL weights: the checkpoints hold the same tensors, bit for bit
    import torch
    ckpts = [rel for rel in ours if rel.suffix == ".ckpt"]
    assert ckpts
    for rel in ckpts:
        sa = torch.load(ours[rel], map_location="cpu", weights_only=False)
        sb = torch.load(theirs[rel], map_location="cpu", weights_only=False)
        sa, sb = (s.get("state_dict", s) if isinstance(s, dict) else s for s in (sa, sb))
        assert sa.keys() == sb.keys(), rel
        for key in sa:
            if torch.is_tensor(sa[key]):
                assert torch.equal(sa[key], sb[key]), f"{rel}:{key}"


# ---- GPU requests: the sbatch line the plugin builds from the profile (no GPU needed) ----------------------

def plugin_sbatch_line(rule: str, resources: dict, threads: int) -> str:
    """The executor plugin's own sbatch line for one job of `rule` with these resources: its partition and
    submit-string builders and its GPU/GRES builder, fed a job with the resources Snakemake would give it."""
    from snakemake_executor_plugin_slurm import Executor
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class Res(dict):
        __getattr__ = dict.__getitem__

    job = SimpleNamespace(resources=Res(resources), threads=threads, name=rule, is_group=lambda: False)
    executor = SimpleNamespace(_partitions=None, _fallback_partition=None, logger=None)
    settings = SimpleNamespace(requeue=False, no_requeue=False, qos=None, reservation=None)
    account = f" -A {shlex.quote(resources['slurm_account'])}" if resources.get("slurm_account") else ""
    params = {"run_uuid": "cinescar-check", "slurm_logfile": "/dev/null", "comment_str": f"rule_{rule}",
              "account": account, "partition": Executor.get_partition_arg(executor, job), "workdir": None}
    return get_submit_command(job, params, settings=settings) + set_gres_string(job)


def _shipped(rule: str) -> tuple[dict, int]:
    profile = yaml.safe_load(PROFILE.read_text(encoding="utf-8"))
    from cinescar.config import load_config

    config = load_config()  # config/config.yaml resolved (it holds only what differs from the schema)
    return {**profile["default-resources"], **profile["set-resources"][rule]}, int(config["dl"]["threads"])


# a site's ways to ask for one GPU with the plugin's own options, and the sbatch flags each must produce
GPU_VARIANTS = {
    "gpu": ({"gpu": 1}, ["-p gpu", "--gpus=1", "--cpus-per-task="]),
    "gpu+model": ({"gpu": 1, "gpu_model": "a100"}, ["-p gpu", "--gpus=a100:1"]),
    "gres": ({"gpu": 0, "gres": "gpu:1"}, ["-p gpu", "--gres=gpu:1"]),
    "cpus_per_gpu": ({"gpu": 1, "cpus_per_gpu": 2}, ["-p gpu", "--gpus=1", "--cpus-per-gpu=2"]),
    "site partition": ({"gpu": 1, "slurm_partition": "a100-short"}, ["-p a100-short", "--gpus=1"]),
}


@pytest.mark.parametrize("variant", GPU_VARIANTS)
@pytest.mark.parametrize("rule", ["dl_tune", "dl_train"])
def test_gpu_rules_ask_the_gpu_partition_for_a_gpu(rule, variant):
    resources, threads = _shipped(rule)
    extra, flags = GPU_VARIANTS[variant]
    resources = {k: v for k, v in {**resources, **extra}.items() if v != 0}
    line = plugin_sbatch_line(rule, resources, threads)
    for flag in flags:
        assert flag in line, (flag, line)
    assert f"--mem {resources['mem_mb']}" in line and f"-t {resources['runtime']}" in line, line
    assert "--ntasks=" not in line, line  # a GPU job gets no implicit task geometry
    if "cpus_per_gpu" in extra:
        assert "--cpus-per-task" not in line, line


@pytest.mark.parametrize("variant", ["gpu", "gres", "cpus_per_gpu"])
def test_the_gpu_partition_accepts_the_plugins_gpu_request(slurm_cluster, variant):
    """`sbatch --test-only` of the plugin's line on the local cluster's gpu partition: slurmctld validates it
    (partition, GPU count, memory, CPUs) without running anything; asking for a second GPU is refused."""
    resources, threads = _shipped("dl_train")
    extra = GPU_VARIANTS[variant][0]
    resources = {k: v for k, v in {**resources, **extra}.items() if v != 0}
    resources.update(slurm_account=slurm_cluster.account,
                     mem_mb=min(resources["mem_mb"], slurm_cluster.real_memory_mb // 2))
    threads = min(threads, os.cpu_count() or 1)
    line = plugin_sbatch_line("dl_train", resources, threads).replace("sbatch --parsable", "sbatch --test-only")
    ok = subprocess.run(f"{line} --wrap true", shell=True, capture_output=True, encoding="utf-8")
    assert ok.returncode == 0 and "to start at" in ok.stderr and "in partition gpu" in ok.stderr, (line, ok.stderr)
    two = re.sub(r"(--gpus=|--gres=gpu:)1", r"\g<1>2", line)
    refused = subprocess.run(f"{two} --wrap true", shell=True, capture_output=True, encoding="utf-8")
    assert refused.returncode != 0 and "not available" in refused.stderr, (two, refused.stderr)


def test_the_skip_reason_says_what_is_missing(monkeypatch):
    """Where the cluster cannot be had, the skip names the cause (it is reported by `-ra` and as a warning)."""
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "needs root" in cannot_install_reason()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert "no apt-get" in cannot_install_reason()
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    assert cannot_install_reason() is None
