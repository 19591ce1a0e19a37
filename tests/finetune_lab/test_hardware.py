import torch

from finetune_lab.hardware import loader_defaults


def test_loader_defaults_by_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert loader_defaults() == {}  # CPU: the cores that compute would also collate
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    gpu = loader_defaults()
    assert gpu["dataloader_num_workers"] == 2 and gpu["per_device_eval_batch_size"] == 256
