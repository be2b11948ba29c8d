import pytest

from agent.settings import Settings
from agent.types import AgentError


def test_defaults_pick_packaged_models():
    s = Settings()
    assert (s.asr_engine, s.asr_model, s.encoder_model, s.tts_voice) == \
        ("auto", "base", "all-MiniLM-L6-v2", "en_US-joe-medium")


def test_file_then_environment_then_overrides(tmp_path):
    config = tmp_path / "agent.toml"
    config.write_text('asr_model = "tiny.en"\nasr_beam_size = 2\ntts_voice = "/voices/x.onnx"\n')
    s = Settings.load(config, env={"SUPPORT_AGENT_ASR_BEAM_SIZE": "3"})
    assert s.asr_model == "tiny.en"  # from the file
    assert s.asr_beam_size == 3  # environment beats the file, and is typed
    assert s.replace(asr_beam_size=1, asr_model=None).asr_beam_size == 1  # None leaves a value alone
    assert s.replace(asr_model=None).asr_model == "tiny.en"


def test_table_form_and_config_from_environment(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[support-agent]\nlanguage = "de"\n')
    assert Settings.load(env={"SUPPORT_AGENT_CONFIG": str(config)}).language == "de"


@pytest.mark.parametrize("content, message", [
    ("asr_beam_size = 'five'", "must be int"),
    ("no_such_setting = 1", "unknown setting 'no_such_setting'"),
    ("asr_model = ", "not valid TOML"),
])
def test_bad_settings_are_named(tmp_path, content, message):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    with pytest.raises(AgentError, match=message):
        Settings.load(config, env={})


def test_missing_settings_file_is_an_error(tmp_path):
    with pytest.raises(AgentError, match="settings file not found"):
        Settings.load(tmp_path / "nope.toml", env={})
