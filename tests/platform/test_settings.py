"""Every setting is documented in .env.example and the README."""

from __future__ import annotations

from pathlib import Path

import pytest

from billing.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_env_example_and_readme() -> None:
    env_example = ROOT.joinpath(".env.example").read_text()
    readme = ROOT.joinpath("README.md").read_text()
    names = [name.upper() for name in Settings.model_fields]
    missing_env = [n for n in names if f"\n{n}=" not in env_example]
    missing_readme = [n for n in names if f"`{n}`" not in readme]
    assert missing_env == []
    assert missing_readme == []


def test_blank_values_mean_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "TEST_CLOCKS_ENABLED", "PORT"):
        monkeypatch.delenv(name, raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("DATABASE_URL=\nTEST_CLOCKS_ENABLED=\nPORT=9000\n")
    settings = Settings(_env_file=env_file)
    assert settings.database_url is None
    assert settings.embedded
    assert settings.test_clocks_active
    assert settings.port == 9000
