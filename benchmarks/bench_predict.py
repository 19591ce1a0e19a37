#!/usr/bin/env python
"""Inference benchmark of a saved run: each backend's size, memory, speed and score, and the service under load.

    python benchmarks/bench_predict.py outputs/sentiment/RUN [--student outputs/sentiment/STUDENT]
    make bench-predict RUN=outputs/sentiment/RUN [STUDENT=...]

Backends: PyTorch fp32, PyTorch bf16 (only where the CPU has native bf16: AVX-512 BF16 or AMX;
elsewhere skipped, with the reason), ONNX fp32 and ONNX int8 (from `make export RUN=...`), and a
distilled student run (PyTorch fp32, plus its ONNX int8 when the student was exported too).
For each: model size on disk, peak RSS, texts/s labelling batches of 32 test texts, latency of one
text at a time (p50/p95), and the main test metric on the run's own test set. Then serve.py under
load: N concurrent clients for S seconds (requests/s, p50/p95 latency, errors), per service backend.

Every measurement runs in its own fresh subprocess (so peak RSS is that backend's own; a
"baseline" worker that imports the same libraries and loads only the tokenizer gives the floor).
Speed rounds are interleaved (A B C A B C ...) so drift on a shared machine hits every backend
alike; figures are medians over rounds, and ratios are against PyTorch fp32 of the same run.
The timed path is the user's: inference.label_texts (tokenize, model, post-process) on raw text.
Results: a table on stdout and bench-results/bench-predict-<time>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
NO_STUDENT = "no student given (--student RUN, or make bench-predict STUDENT=RUN): distillation is branch 'distill'"


# --- workers: one measurement in a fresh process -------------------------------------------------


def peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def bench_texts(run: Any, count: int) -> list[str]:
    """The first `count` test texts, as a user would send them (NER: the tokens joined by spaces)."""
    from finetune_lab import inference

    rows = inference.load_test_rows(run)[:count]
    return [" ".join(r["tokens"]) if run.is_token_task else r["text"] for r in rows]


def worker(spec: dict) -> dict:
    """kind 'speed': load, warm up, time batches of 32 and single texts; 'score': the test metric;
    'baseline': the libraries and the tokenizer only (the RSS floor)."""
    import onnxruntime  # noqa: F401  (imported by every kind, so the baseline holds it too)
    import torch
    from transformers.utils import logging as hf_logging

    from finetune_lab import inference

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if spec["kind"] == "baseline":
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(spec["run"])
        if spec.get("threads"):
            torch.set_num_threads(spec["threads"])
        return {"peak_rss_mib": peak_rss_mib(), "torch_threads": torch.get_num_threads()}
    started = time.perf_counter()
    run = inference.load_run(spec["run"], spec["backend"], spec.get("threads"))
    load_s = time.perf_counter() - started
    out: dict[str, Any] = {"backend": run.backend, "load_s": round(load_s, 2), "bytes": inference.model_bytes(run)}
    if spec["kind"] == "score":
        out["test"] = inference.evaluate([run])
        out["peak_rss_mib"] = peak_rss_mib()
        return out
    texts = bench_texts(run, spec["texts"])
    batch = spec["batch_size"]
    inference.label_texts([run], texts[:batch])  # warm-up: first calls allocate and pick kernels
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        inference.label_texts([run], texts[i : i + batch])
    out["texts_per_s"] = len(texts) / (time.perf_counter() - start)
    latencies = []
    for text in texts[: spec["latency_texts"]]:
        t0 = time.perf_counter()
        inference.label_texts([run], [text])
        latencies.append(1000 * (time.perf_counter() - t0))
    out.update({
        "p50_ms": statistics.median(latencies), "p95_ms": percentile(latencies, 95),
        "peak_rss_mib": peak_rss_mib(), "texts": len(texts), "latency_texts": len(latencies),
    })  # fmt: skip
    return out


def run_worker(spec: dict, log: Path) -> dict:
    """One worker in a fresh Python; its result comes back through a JSON file."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = handle.name
    command = [sys.executable, __file__, "--worker", json.dumps(spec), "--result", result_path]
    with log.open("a") as out:
        out.write(f"\n===== {spec}\n")
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        if done.returncode != 0:
            return {"error": f"exit code {done.returncode}; see {log}"}
        return json.loads(Path(result_path).read_text())
    finally:
        Path(result_path).unlink(missing_ok=True)


# --- the service under load -----------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(url: str, text: str) -> int:
    request = urllib.request.Request(url, data=json.dumps({"inputs": text}).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def vm_hwm_mib(pid: int) -> float | None:
    """A live process's peak RSS (VmHWM), read before it exits."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def load_test(run_dir: str, backend: str, texts: list[str], clients: int, seconds: float, log: Path) -> dict:
    """serve.py in its own process; `clients` threads send one text per request, back to back, for `seconds`."""
    port = free_port()
    command = [sys.executable, str(ROOT / "serve.py"), run_dir, "--backend", backend, "--port", str(port)]
    with log.open("a") as out:
        out.write(f"\n===== serve {backend}\n")
        out.flush()
        server = subprocess.Popen([*command, "--log_level", "warning"], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 300
        while True:
            if server.poll() is not None:
                return {"error": f"serve.py exited with {server.returncode}; see {log}"}
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(base + "/health", timeout=5) as response:
                    if response.status == 200:
                        break
            if time.time() > deadline:
                return {"error": "serve.py not ready after 300 s"}
            time.sleep(0.3)
        for text in texts[:8]:  # warm-up, untimed
            post(base + "/predict", text)
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        stop_at = time.perf_counter() + seconds

        def client(offset: int) -> None:
            i = offset
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    status = post(base + "/predict", texts[i % len(texts)])
                except Exception as err:  # a refused or dropped connection is the service's error: counted
                    status, detail = 0, f"{type(err).__name__}: {err}"
                elapsed = 1000 * (time.perf_counter() - t0)
                with lock:
                    latencies.append(elapsed)
                    if status != 200:
                        errors.append(detail if status == 0 else f"HTTP {status}")
                i += clients

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        return {
            "backend": backend, "clients": clients, "seconds": round(wall, 1), "requests": len(latencies),
            "requests_per_s": len(latencies) / wall, "p50_ms": statistics.median(latencies) if latencies else None,
            "p95_ms": percentile(latencies, 95) if latencies else None, "errors": len(errors),
            "error_examples": sorted(set(errors))[:3], "server_peak_rss_mib": vm_hwm_mib(server.pid),
        }  # fmt: skip
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --- the orchestrator ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU model, cores, the flags that decide int8/bf16 speed, library versions, load."""
    import onnxruntime
    import torch

    from finetune_lab.hardware import cpu_has_fast_bf16
    from finetune_lab.results import environment

    cpu, flags = "unknown", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    return {
        **environment(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cpu_flags": {flag: flag in flags for flag in CPU_FLAGS},
        "cpu_fast_bf16": cpu_has_fast_bf16(),
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": onnxruntime.__version__,
        "load_average_at_start": os.getloadavg(),
    }


def plan(args: argparse.Namespace, info: dict) -> tuple[list[tuple[str, str, str]], dict[str, str]]:
    """(row name, run folder, backend) to measure, and the rows skipped with their reasons."""
    from finetune_lab import inference

    rows = [("torch-fp32", args.run, "torch")]
    skipped: dict[str, str] = {}
    if info["cpu_fast_bf16"]:
        rows.append(("torch-bf16", args.run, "torch-bf16"))
    else:
        present = [f for f, on in info["cpu_flags"].items() if on]
        skipped["torch-bf16"] = (
            f"this CPU has no native bf16 (no AVX-512 BF16 / AMX; flags: {', '.join(present) or 'none of interest'}): "
            "bf16 matmuls are emulated there and slower than fp32"
        )
    for backend in ("onnx-fp32", "onnx-int8"):
        if (Path(args.run) / inference.ONNX_DIR / inference.ONNX_FILES[backend]).exists():
            rows.append((backend, args.run, backend))
        else:
            skipped[backend] = f"not exported: make export RUN={args.run}"
    if args.student:
        rows.append(("student-torch-fp32", args.student, "torch"))
        if (Path(args.student) / inference.ONNX_DIR / inference.ONNX_FILES["onnx-int8"]).exists():
            rows.append(("student-onnx-int8", args.student, "onnx-int8"))
        else:
            skipped["student-onnx-int8"] = f"student not exported: make export RUN={args.student}"
    else:
        skipped["student"] = NO_STUDENT
    return rows, skipped


def median_of(results: list[dict], key: str) -> float | None:
    values = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(values) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("run", nargs="?", help="a run folder (outputs/<task>/<run>), exported for the ONNX rows")
    parser.add_argument("--student", help="a distilled student's run folder (same task and test set)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved speed rounds per backend (default 3)")
    parser.add_argument("--texts", type=int, default=256, help="test texts timed in batches (default 256)")
    parser.add_argument("--batch_size", type=int, default=32, help="throughput batch size (default 32)")
    parser.add_argument("--latency_texts", type=int, default=60, help="texts timed one at a time (default 60)")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="intra-op threads per backend (default 0: the libraries' own, one per core)",
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients of the service (default 8)")
    parser.add_argument("--serve_seconds", type=float, default=30, help="load test length (default 30)")
    parser.add_argument(
        "--serve_backends", default="torch,onnx", help="service backends to load-test, comma-separated ('' for none)"
    )
    parser.add_argument("--out", default="bench-results", help="folder for the JSON and log (default bench-results)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        Path(args.result).write_text(json.dumps(worker(json.loads(args.worker))))
        return 0
    if not args.run:
        parser.error("give a run folder")
    # the workers run from the checkout's root: hand them absolute paths
    args.run = str(Path(args.run).resolve())
    args.student = str(Path(args.student).resolve()) if args.student else None
    from transformers.utils import logging as hf_logging

    from finetune_lab import inference
    from finetune_lab.errors import UsageError

    hf_logging.disable_progress_bar()
    try:
        teacher = inference.load_run(args.run)
        if args.student:
            student = inference.load_run(args.student)
            if student.results["task"] != teacher.results["task"]:
                raise UsageError(f"--student {args.student} is a '{student.results['task']}' run, not a "
                                 f"'{teacher.results['task']}' run")  # fmt: skip
    except UsageError as err:
        print(f"bench_predict.py: error: {err}", file=sys.stderr)
        return 2
    metric = teacher.results["main_metric"]
    texts = bench_texts(teacher, max(args.texts, args.latency_texts))
    del teacher

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log = out_dir / f"bench-predict-{stamp}.log"
    started = time.time()
    info = machine()
    rows, skipped = plan(args, info)
    print(f"{info['cpu']}, {info['cores']} cores; measuring {', '.join(r[0] for r in rows)}; log {log}", flush=True)

    baseline = run_worker({"kind": "baseline", "run": args.run}, log)
    scores = {}
    for name, run_dir, backend in rows:
        scores[name] = run_worker({"kind": "score", "run": run_dir, "backend": backend, "threads": args.threads}, log)
        print(f"  score {name}: {scores[name].get('test', {}).get(metric, scores[name].get('error'))}", flush=True)
    speed: dict[str, list[dict]] = {name: [] for name, _, _ in rows}
    for round_ in range(args.rounds):
        for name, run_dir, backend in rows:
            spec = {"kind": "speed", "run": run_dir, "backend": backend, "texts": args.texts, "threads": args.threads,
                    "batch_size": args.batch_size, "latency_texts": args.latency_texts}  # fmt: skip
            result = run_worker(spec, log)
            speed[name].append(result)
            print(f"  round {round_ + 1}/{args.rounds} {name}: {result.get('texts_per_s', 0):.1f} texts/s "
                  f"{result.get('error', '')}", flush=True)  # fmt: skip
    service = []
    for backend in [b for b in args.serve_backends.split(",") if b]:
        service.append(load_test(args.run, backend, texts, args.clients, args.serve_seconds, log))
        print(f"  service {backend}: {service[-1].get('requests_per_s', 0):.1f} req/s", flush=True)

    report = build_report(args, info, metric, rows, skipped, baseline, scores, speed, service, time.time() - started)
    path = out_dir / f"bench-predict-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(report_text(report))
    print(f"\nresults: {path}")
    failed = [r["name"] for r in report["backends"] if r["errors"]] + [s["backend"] for s in service if "error" in s]
    if failed:
        print(f"bench_predict.py: error: {', '.join(failed)} failed; see {log}", file=sys.stderr)
        return 1
    return 0


def build_report(args, info, metric, rows, skipped, baseline, scores, speed, service, seconds) -> dict[str, Any]:
    """The table's numbers, medians over rounds, ratios against PyTorch fp32, and the issue's targets."""
    from finetune_lab.metrics import greater_is_better

    table = []
    for name, run_dir, backend in rows:
        score = scores[name].get("test", {}).get(metric)
        rounds = speed[name]
        table.append({
            "name": name, "run": run_dir, "backend": backend, "bytes": scores[name].get("bytes"),
            "peak_rss_mib": median_of(rounds, "peak_rss_mib"),
            "texts_per_s": median_of(rounds, "texts_per_s"),
            "texts_per_s_rounds": [r.get("texts_per_s") for r in rounds],
            "p50_ms": median_of(rounds, "p50_ms"), "p95_ms": median_of(rounds, "p95_ms"),
            "load_s": median_of(rounds, "load_s"), "test": score,
            "errors": [r["error"] for r in [scores[name], *rounds] if "error" in r],
        })  # fmt: skip
    by_name = {row["name"]: row for row in table}
    reference = by_name["torch-fp32"]
    sign = 1 if greater_is_better(metric) else -1
    for row in table:
        row["speedup"] = ratio(row["texts_per_s"], reference["texts_per_s"])
        row["size_ratio"] = ratio(row["bytes"], reference["bytes"])
        both = None not in (row["test"], reference["test"])
        row["points_lost"] = 100 * sign * (reference["test"] - row["test"]) if both else None
    if service:
        ref = next((s for s in service if s.get("backend") == "torch"), None)
        for s in service:
            s["speedup"] = ratio(s.get("requests_per_s"), ref.get("requests_per_s")) if ref else None
    targets = []
    int8 = by_name.get("onnx-int8")
    if int8:
        targets.append(target("ONNX int8 texts/s vs PyTorch fp32", int8["speedup"], ">=", 2.5, "x"))
        targets.append(target("ONNX int8 points of test " + metric + " lost", int8["points_lost"], "<=", 0.5, ""))
    student, student_int8 = by_name.get("student-torch-fp32"), by_name.get("student-onnx-int8")
    if student:
        targets.append(target("student (PyTorch fp32) texts/s vs PyTorch fp32", student["speedup"], ">=", 1.8, "x"))
        if student_int8 and int8:
            targets.append(target("student int8 texts/s vs teacher int8", ratio(student_int8["texts_per_s"],
                                  int8["texts_per_s"]), ">=", 1.8, "x"))  # fmt: skip
        targets.append(target("student points of test " + metric + " lost", student["points_lost"], "<=", 1.5, ""))
    info = {**info, "load_average_at_end": os.getloadavg()}
    return {
        "run": args.run, "student": args.student, "main_metric": metric, "machine": info, "seconds": round(seconds),
        "settings": {k: getattr(args, k) for k in ("rounds", "texts", "batch_size", "latency_texts", "threads",
                                                   "clients", "serve_seconds", "serve_backends")},
        "baseline_peak_rss_mib": baseline.get("peak_rss_mib"), "backends": table, "skipped": skipped,
        "service": service, "targets": targets,
    }  # fmt: skip


def ratio(value: float | None, reference: float | None) -> float | None:
    return None if not value or not reference else value / reference


def target(what: str, value: float | None, op: str, bound: float, unit: str) -> dict[str, Any]:
    met = None if value is None else (value >= bound if op == ">=" else value <= bound)
    return {"what": what, "value": value, "target": f"{op} {bound}{unit}", "met": met}


def fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def report_text(report: dict) -> str:
    m = report["machine"]
    flags = ", ".join(f for f, on in m["cpu_flags"].items() if on) or "none of " + ", ".join(m["cpu_flags"])
    lines = [
        "",
        f"machine: {m['cpu']}, {m['cores']} cores, flags: {flags}; torch {m.get('packages', {}).get('torch', '')} "
        f"({m['torch_threads']} threads by default), onnxruntime {m['onnxruntime']}; "
        f"threads per backend: {report['settings']['threads'] or 'the libraries defaults'}; load average "
        f"{m['load_average_at_start'][0]:.1f} at start, {m['load_average_at_end'][0]:.1f} at end",
        f"run: {report['run']}" + (f"; student: {report['student']}" if report["student"] else ""),
        f"medians of {report['settings']['rounds']} interleaved rounds; {report['settings']['texts']} test texts in "
        f"batches of {report['settings']['batch_size']}, {report['settings']['latency_texts']} one at a time; "
        f"RSS floor (libraries + tokenizer): {fmt(report['baseline_peak_rss_mib'], '.0f', ' MiB')}",
        "",
        f"| backend | size MiB | x fp32 | peak RSS MiB | texts/s @{report['settings']['batch_size']} | x fp32 | "
        f"p50 ms @1 | p95 ms @1 | test {report['main_metric']} | points lost |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["backends"]:
        mib = row["bytes"] / 2**20 if row["bytes"] else None
        lines.append(
            f"| {row['name']} | {fmt(mib, '.1f')} | {fmt(row['size_ratio'], '.2f')} | "
            f"{fmt(row['peak_rss_mib'], '.0f')} | {fmt(row['texts_per_s'], '.1f')} | {fmt(row['speedup'], '.2f')} | "
            f"{fmt(row['p50_ms'], '.1f')} | {fmt(row['p95_ms'], '.1f')} | {fmt(row['test'], '.4f')} | "
            f"{fmt(row['points_lost'], '+.2f')} |"
        )
        if row["errors"]:
            lines.append(f"|   errors: {'; '.join(row['errors'])} |")
    for name, why in report["skipped"].items():
        lines.append(f"| {name} | skipped: {why} |")
    if report["service"]:
        lines += ["", f"service under load ({report['settings']['clients']} concurrent clients, one text per request, "
                  f"{report['settings']['serve_seconds']:.0f} s):", "",
                  "| service backend | requests/s | x torch | p50 ms | p95 ms | errors | server peak RSS MiB |",
                  "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for s in report["service"]:
            if "error" in s:
                lines.append(f"| {s.get('backend', '?')} | failed: {s['error']} |")
                continue
            lines.append(
                f"| {s['backend']} | {s['requests_per_s']:.1f} | {fmt(s['speedup'], '.2f')} | "
                f"{fmt(s['p50_ms'], '.0f')} | {fmt(s['p95_ms'], '.0f')} | {s['errors']} of {s['requests']} | "
                f"{fmt(s['server_peak_rss_mib'], '.0f')} |"
            )
    if report["targets"]:
        lines += ["", "targets (issue 15):"]
        for t in report["targets"]:
            verdict = {True: "met", False: "NOT met", None: "not measured"}[t["met"]]
            lines.append(f"- {t['what']}: {fmt(t['value'], '.2f')} (target {t['target']}): {verdict}")
    if not report["student"]:
        lines.append(f"- student: {NO_STUDENT}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
