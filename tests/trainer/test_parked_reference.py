"""ParkedReference keeps the KL reference in host memory except inside `scoring()`.

No CUDA here, so the device moves are observed on a module that records them (a stand-in for a
GPU, which cannot run on this machine); the CPU case, where nothing may move, runs for real.
"""

from __future__ import annotations

import torch

from megathink.trainer.parked_reference import ParkedReference


class RecordingModule(torch.nn.Module):
    """Records the devices `.to()` is called with instead of moving (no GPU on CI)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(2))
        self.moves: list[str] = []

    def to(self, device):  # type: ignore[override]
        self.moves.append(str(torch.device(device)))
        return self


class Backend:
    def __init__(self) -> None:
        self.model = RecordingModule()
        self.device = torch.device("cuda:0")


def test_parked_on_the_host_and_on_the_device_only_while_scoring(monkeypatch):
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    backend = Backend()
    reference = ParkedReference(backend, torch.device("cuda:0"))
    assert backend.model.moves == ["cpu"] and backend.device == torch.device("cpu")
    with reference.scoring() as scoring:
        assert scoring is backend and backend.device == torch.device("cuda:0")
    assert backend.model.moves == ["cpu", "cuda:0", "cpu"] and backend.device == torch.device("cpu")


def test_kept_on_the_device_when_asked_and_never_moved_on_a_cpu_machine():
    backend = Backend()
    with ParkedReference(backend, torch.device("cuda:0"), park=False).scoring():
        pass
    assert backend.model.moves == []
    cpu = Backend()
    cpu.device = torch.device("cpu")
    with ParkedReference(cpu, torch.device("cpu")).scoring():
        pass
    assert cpu.model.moves == []
