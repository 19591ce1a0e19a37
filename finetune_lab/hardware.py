"""What the hardware can do: precision and loader defaults (bf16 where it is fast), attention backend, peak memory."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import torch


@cache
def cpu_has_fast_bf16() -> bool:
    """True on x86 CPUs with AVX-512 BF16 or AMX, where bf16 autocast beats fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision_defaults() -> dict[str, bool]:
    """TrainingArguments defaults: bf16 on CUDA with bf16 or a bf16-capable CPU; TF32 on Ampere+.

    `--bf16 false` forces fp32 and `--bf16 true` forces bf16; `use_cpu` is what transformers
    needs to accept bf16 on a machine without a GPU.
    """
    if torch.cuda.is_available():
        ampere = torch.cuda.get_device_capability()[0] >= 8
        return {"bf16": torch.cuda.is_bf16_supported(), "tf32": ampere}
    return {"bf16": cpu_has_fast_bf16(), "use_cpu": True}


def configure_attention(cudnn_attention: bool) -> None:
    """Keep PyTorch's SDPA off its cuDNN backend on CUDA unless asked.

    cuDNN attention builds an execution plan for every new sequence length; with dynamic padding
    nearly every batch has a new one. On an H100 it made bf16 NER training 7.6x slower
    (103 vs 785 samples/s, `make bench`, 2,000 CoNLL sentences); the flash/efficient kernels don't plan.
    """
    if torch.cuda.is_available():
        torch.backends.cuda.enable_cudnn_sdp(cudnn_attention)


def precision_name(bf16: bool, fp16: bool) -> str:
    return "bf16" if bf16 else "fp16" if fp16 else "fp32"


def loader_defaults() -> dict[str, Any]:
    """Data-loader and eval-batch defaults by device (the training batch is a hyperparameter: untouched).

    On a GPU, collating in 2 worker processes into pinned memory keeps the device fed, a large
    eval batch fills it, and padding to a multiple of 8 gives tensor-core shapes and 8x fewer
    distinct shapes (7.3x faster bf16 NER training on an H100 while cuDNN attention was on,
    `make bench`). On a CPU the same 2 cores that compute would also collate, so workers stay off
    and the CPU settings stand (no workers, eval batch 32 from arguments.BASE_DEFAULTS, no padding
    multiple); `make bench` measures both settings on the machine it runs on.
    """
    if torch.cuda.is_available():
        return {
            "dataloader_num_workers": 2,
            "dataloader_pin_memory": True,
            "per_device_eval_batch_size": 256,
            "pad_to_multiple_of": 8,
        }
    return {}


def peak_memory_mb() -> float:
    """Peak memory of this process: GPU memory allocated by torch on CUDA, else the peak RSS."""
    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB
