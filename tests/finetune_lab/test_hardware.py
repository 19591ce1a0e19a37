import pytest
import torch

from finetune_lab.hardware import configure_attention, loader_defaults


def test_loader_defaults_by_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert loader_defaults() == {}  # CPU: the cores that compute would also collate
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    gpu = loader_defaults()
    assert gpu["dataloader_num_workers"] == 2 and gpu["per_device_eval_batch_size"] == 256
    assert gpu["pad_to_multiple_of"] == 8  # tensor-core shapes, 8x fewer distinct batch shapes


@pytest.fixture
def restore_cudnn_sdp():
    before = torch.backends.cuda.cudnn_sdp_enabled()
    yield
    torch.backends.cuda.enable_cudnn_sdp(before)


def test_cudnn_attention_is_off_on_cuda_unless_asked(monkeypatch, restore_cudnn_sdp):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    torch.backends.cuda.enable_cudnn_sdp(True)
    configure_attention(cudnn_attention=False)
    assert not torch.backends.cuda.cudnn_sdp_enabled()
    configure_attention(cudnn_attention=True)
    assert torch.backends.cuda.cudnn_sdp_enabled()
