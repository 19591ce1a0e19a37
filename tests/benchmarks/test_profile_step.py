"""The step profile's buckets: every op in exactly one, and the wall time no op accounts for as overhead."""

import sys

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
from profile_step import OTHER, OVERHEAD, breakdown, bucket_of  # noqa: E402


def test_ops_land_in_their_bucket_and_the_rest_of_the_wall_is_overhead():
    assert bucket_of("aten::addmm") == bucket_of("aten::mm") == "matmul"
    assert bucket_of("aten::_fused_adamw_") == "optimizer"
    assert bucket_of("aten::_scaled_dot_product_flash_attention_for_cpu") == "attention"
    assert bucket_of("aten::native_layer_norm_backward") == "layer norm"
    assert bucket_of("enumerate(DataLoader)#_SingleProcessDataLoaderIter.__next__") == "data loading + collation"
    assert bucket_of("aten::copy_") == OTHER
    events = [("aten::mm", 300.0), ("aten::addmm", 100.0), ("aten::_fused_adamw_", 60.0), ("aten::copy_", 20.0)]
    per_step = breakdown(events, wall_ms=1000.0, steps=2)  # 2 steps of 500 ms, ops 240 ms of each
    assert per_step == {OVERHEAD: 260.0, "matmul": 200.0, "optimizer": 30.0, OTHER: 10.0}
    assert list(per_step) == [OVERHEAD, "matmul", "optimizer", OTHER]  # largest first
