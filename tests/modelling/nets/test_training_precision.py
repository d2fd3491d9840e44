"""runtime.bf16: on, off, or where the device has fast bf16 kernels."""

import dataclasses

import pytest
import torch

from modelling.config import load_config
from modelling.nets.training import bf16_autocast, fast_bf16

CPU = torch.device("cpu")


@pytest.mark.parametrize("setting", [True, False])
def test_an_explicit_setting_is_obeyed(setting):
    config = load_config("tiny")
    config = dataclasses.replace(config, runtime=dataclasses.replace(config.runtime, bf16=setting))
    assert bf16_autocast(config, CPU) is setting


def test_auto_follows_the_cpus_bf16_kernels(monkeypatch):
    config = load_config("default")
    assert config.runtime.bf16 == "auto"
    assert bf16_autocast(config, CPU) == torch.ops.mkldnn._is_mkldnn_bf16_supported()
    for fast in (True, False):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda fast=fast: fast)
        assert fast_bf16(CPU) is fast and bf16_autocast(config, CPU) is fast
