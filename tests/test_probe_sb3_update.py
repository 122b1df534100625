"""`scripts/probe_sb3_update.py`: SB3 policy parameters map onto the project's module."""

from __future__ import annotations

import pytest

from tests.script_loader import load_script

probe = load_script("probe_sb3_update")


def test_sb3_names_map_onto_the_project_heads_and_trunk() -> None:
    # One hidden layer: SB3's policy_net is [LayerNorm, Linear, ReLU], the project's head
    # [LayerNorm, Linear, ReLU, Linear], its last Linear SB3's action_net.
    name = probe.rllib_name
    assert name("features_extractor.fusion.q.weight", 3, 3) == "fusion.q.weight"
    assert name("pi_features_extractor.fusion.q.weight", 3, 3) is None  # the shared trunk
    assert name("vf_features_extractor.fusion.q.weight", 3, 3) is None
    assert name("mlp_extractor.policy_net.0.weight", 3, 3) == "output.policy.0.weight"
    assert name("mlp_extractor.value_net.1.bias", 3, 3) == "output.value.1.bias"
    assert name("action_net.weight", 3, 3) == "output.policy.3.weight"
    assert name("value_net.bias", 5, 3) == "output.value.3.bias"
    assert name("action_net.bias", 5, 3) == "output.policy.5.bias"


def test_an_unknown_sb3_parameter_is_an_error() -> None:
    with pytest.raises(KeyError, match="log_std"):
        probe.rllib_name("log_std", 3, 3)
