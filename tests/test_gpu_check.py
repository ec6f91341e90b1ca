"""benchmarks/gpu_check.py --dry-run: the GPU proof's own script, at tiny sizes on a CPU, keeps working."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from helpers import REPO

TRAIN_KEYS = {"a_ips", "b_ips", "c_ips", "b_over_a", "b_over_c", "peak_mem_mib"}
INFERENCE_KEYS = {"a_ips", "b_ips", "c_ips", "b_over_a", "b_over_c"}
CPU_PATHS = ("data", "train_resident_bf16_channels_last", "predict_pil", "train_throughput", "ensemble_inference",
             "ddp_2_processes")
CUDA_PATHS = ("train_stream", "predict_nvjpeg", "decoder_agreement")


def test_dry_run_writes_every_key_and_passes_every_path_a_cpu_can_run(tmp_path):
    out = tmp_path / "results"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out),
                           "--work", str(tmp_path / "work")], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    logs = "\n".join(f.read_text()[-1500:] for f in (tmp_path / "work" / "logs").glob("*.log"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + logs
    (result_file,) = out.glob("*-cpu-dry-run.json")
    result = json.loads(result_file.read_text())

    assert {"device", "torch", "cuda", "train", "inference", "paths"} <= result.keys()
    assert result["device"] == "cpu" and result["dry_run"] is True and result["torch"]
    for name in CPU_PATHS:
        assert result["paths"][name] == "pass", name
    for name in CUDA_PATHS:
        assert result["paths"][name] == "skipped: no CUDA", name
    assert result["paths"]["train_compile"].startswith("skipped: dry run")
    (arch,) = result["train"]
    assert TRAIN_KEYS <= result["train"][arch].keys() and result["train"][arch]["b_ips"] > 0
    assert INFERENCE_KEYS <= result["inference"].keys() and result["inference"]["b_ips"] > 0
    assert result["ddp_backend"].startswith("gloo")
    assert result["members"]["gc-resident"]["epochs"] == 1
    # The one-screen summary names every path.
    assert all(name in proc.stdout for name in result["paths"])
