"""The benchmark's skip rules and its report rendering, on made-up figures: nothing is trained or timed."""

import importlib.util

import pytest

from tests.conftest import ROOT

_spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def skipped(gpu: bool, bf16_default: bool, bf16_gflops: float = 400.0, force: bool = False) -> dict[str, str]:
    info = {"gpu": "H100" if gpu else None, "default_precision": {"bf16": bf16_default}}
    facts = bench.machine_facts(info, {"bf16": bf16_gflops * 1e9, "fp32": 200e9}, force)
    return {v: why for v in bench.NER_VARIANTS if (why := bench.skip_reason(v, facts))}


def test_cpu_with_fast_bf16_skips_what_is_its_default_or_needs_a_gpu():
    assert skipped(gpu=False, bf16_default=True) == {
        "bf16": "bf16 is already the default here",
        "workers0": "no workers is already the default on a CPU",
        "no_pin_memory": "no accelerator: pinned memory does nothing on a CPU-only machine",
        **dict.fromkeys(["pad8", "pad_off", "eager_attention", "cudnn_attention"], bench.GPU_SWITCH),
        "eval_batch_32": "already the default on a CPU",
    }


def test_gpu_skips_its_loader_defaults_and_runs_the_gpu_switches():
    assert skipped(gpu=True, bf16_default=True) == {
        "bf16": "bf16 is already the default here",
        **dict.fromkeys(["workers2", "pad8", "eval_batch_256"], "already the default on a GPU"),
    }


@pytest.mark.parametrize("force", [False, True])
def test_slow_bf16_is_skipped_unless_forced(force):
    rules = skipped(gpu=False, bf16_default=False, bf16_gflops=0.3, force=force)
    assert rules["fp32"] == "fp32 is already the default here"
    assert ("bf16" in rules) is not force
    if not force:
        assert rules["bf16"].startswith("bf16 matmul runs at 0.30 GFLOP/s vs 200.0 in fp32")


def report(machine: dict) -> dict:
    stat = {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    variant = {key: stat for key in bench.SUMMARIZED} | {"what": "default path", "raw": [{"precision": "bf16"}]}
    return {
        "config": dict(bench.FULL),
        "machine": {"cpu": "EPYC", "cores": 2, "gpu": None, "default_precision": {"bf16": True}, **machine},
        "matmul_peak": {"fp32": {"gflops": 197.5}, "bf16": {"gflops": 419.5}},
        "skipped": {"pad8": bench.GPU_SWITCH},
        "prep": {
            "ner": {k: stat for k in ("first_tokenize_s", "cached_tokenize_s", "first_total_s", "cached_total_s")}
        },
        "variants": {"ner/default": variant | {"eval_samples_per_s_vs_baseline": stat}},
        "errors": [],
    }


def test_markdown_and_text_share_their_rows():
    machine = {"git": {"commit": "abcdef123456", "dirty": False}, "packages": {"torch": "2.9", "transformers": "5.0"}}
    markdown = bench.report_text(report(machine), "markdown")
    lines = markdown.splitlines()
    assert lines[0].endswith("torch 2.9, transformers 5.0; default precision here: bf16. Commit abcdef1.")
    assert lines[3].startswith("| task / variant | what | dtype |") and lines[4] == "|" + "---|" * 13
    assert lines[5] == (
        "| ner/default | default path | bf16 | 2.0 [1.0-3.0] | - | 2 | 2.0 [1.0-3.0] | 2.00x | 200% | 2 | 200.0% | "
        "200.0% | 2.000 |"
    )
    assert f"- not run: `pad8`: {bench.GPU_SWITCH}" in lines
    text = bench.report_text(report(machine), "text").splitlines()
    assert (
        text[3].split()
        == "variant dtype train samples/s x base tokens/s eval samples/s x base pad RSS MiB prep s MFU dev".split()
    )
    assert set(text[4]) == {"-", " "}  # tables.render's rule under the header
    assert len(text[5]) == len(text[3]) and text[5].startswith("ner/default")


def test_mfu_against_an_emulated_bf16_peak_is_not_shown():
    emulated = report({}) | {"matmul_peak": {"fp32": {"gflops": 181.4}, "bf16": {"gflops": 1.4}}}
    row = bench.report_text(emulated, "markdown").splitlines()[5]
    assert row.endswith("| 200.0% | - | 2.000 |")  # MFU shown, MFU vs a 1.4 GFLOP/s bf16 peak not
    native = report({}) | {"matmul_peak": {"fp32": {"gflops": 181.4}, "bf16": {"gflops": 400.0}}}
    assert bench.report_text(native, "markdown").splitlines()[5].endswith("| 200.0% | 200.0% | 2.000 |")


def test_markdown_reads_machine_records_from_before_results_environment():
    old = bench.report_text(report({"torch": "2.13.0+cpu", "transformers": "5.24.0"}), "markdown")
    assert "torch 2.13.0+cpu, transformers 5.24.0" in old and "Commit unknown." in old
