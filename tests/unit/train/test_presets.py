import pytest

from personalab.errors import PersonalabError
from personalab.train.presets import PRESETS, TrainSettings, resolve_settings


def test_constrained_preset_is_the_playbook_recipe():
    c = PRESETS["constrained"]
    assert (c.r, c.alpha, c.dropout, c.target_roles, c.weight_decay, c.warmup_ratio) == (
        4, 8.0, 0.1, ("query",), 0.05, 0.1
    )


def test_overrides_replace_only_given_fields():
    s = resolve_settings("constrained", epochs=7, lr=None)
    assert s.epochs == 7 and s.r == 4 and s.lr == PRESETS["constrained"].lr


def test_unknown_preset_setting_and_role_are_user_errors():
    with pytest.raises(PersonalabError, match="unknown preset"):
        resolve_settings("fancy")
    with pytest.raises(PersonalabError, match="unknown training setting"):
        resolve_settings("default", rank=4)
    with pytest.raises(PersonalabError, match="unknown target role"):
        TrainSettings(target_roles=("q_proj",))
