"""`build_rollout_engine`: the engine `rollout.engine` names, and which weights SGLang engines start on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from megathink_fixtures.rollout_servers import load_backend, running_server, save_tiny_model
from megathink.config.rollout import RolloutConfig, SGLangConfig
from megathink.rollout import LocalEngine, RolloutRequest, SamplingParams
from megathink.rollout.engine_factory import build_rollout_engine, close_engine
from megathink.rollout.sglang_engine import SGLangEngine


def test_local_and_sglang_engines_and_their_start_weights(tmp_path: Path) -> None:
    model_dir = save_tiny_model(tmp_path / "start")
    backend, bundle = load_backend(model_dir)
    local = build_rollout_engine(RolloutConfig(), backend, pad_id=bundle.pad_id, batch_size=4, out_dir=tmp_path)
    assert isinstance(local, LocalEngine)
    close_engine(local)  # nothing to release
    with running_server(model_dir) as srv:
        rollout = RolloutConfig(engine="sglang", sglang=SGLangConfig(urls=[srv.url]))
        # the folder holds the policy's weights: served as is, nothing written
        engine = build_rollout_engine(rollout, backend, pad_id=bundle.pad_id, batch_size=4, out_dir=tmp_path / "a",
                                      model_dir=str(model_dir), bundle=bundle)
        assert isinstance(engine, SGLangEngine) and not (tmp_path / "a" / "rollout_weights").exists()
        assert srv.served.weight_version == "default"
        close_engine(engine)
        # control tokens grew the vocabulary (or no folder at all): the policy's weights are written and loaded as version 0
        grown = dataclasses.replace(bundle, vocab_grew=True)
        engine = build_rollout_engine(rollout, backend, pad_id=bundle.pad_id, batch_size=4, out_dir=tmp_path / "b",
                                      model_dir=str(model_dir), bundle=grown)
        folder = tmp_path / "b" / "rollout_weights" / "v00000000"
        assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
        assert srv.served.weight_version == "0" and srv.served.model_path == str(folder)
        samples = engine.generate([RolloutRequest([10, 11], group_id=0)], SamplingParams(max_new_tokens=3, n=2))
        assert [s.weight_version for s in samples] == [0, 0]
        close_engine(engine)
