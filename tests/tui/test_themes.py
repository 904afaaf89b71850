"""Themes: the built-ins validate, --theme / config choose, a broken user theme is reported
and the console still opens, and the high-contrast theme stays within 16 ANSI colours."""

from __future__ import annotations

import pytest

from console.app import DbVitalsApp
from tests.tui.helpers import synthetic_registry, synthetic_settings
from themes import SEVERITIES, ThemeFile, load_theme_file, load_themes

BUILT_IN = ("dbvitals-dark", "dbvitals-light", "dbvitals-high-contrast")


def test_built_in_themes_load_with_severity_variables(tmp_path):
    found = load_themes(tmp_path / "none")
    assert set(BUILT_IN) <= set(found.themes) and not found.problems
    for theme in found.themes.values():
        assert all(f"severity-{level}" in theme.variables for level in SEVERITIES)


def test_high_contrast_uses_only_the_ansi_palette(tmp_path):
    theme = load_themes(tmp_path).themes["dbvitals-high-contrast"]
    colours = [theme.primary, theme.secondary, theme.accent, theme.warning, theme.error, theme.success,
               theme.foreground, theme.background, theme.surface, theme.panel,
               *(v for k, v in theme.variables.items() if k.startswith(("severity-", "state-", "production")))]
    assert theme.ansi and all(c.startswith("ansi_") for c in colours)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('name = "x"\nprimary = "not-a-colour"\n', "primary: not a colour"),
        ('name = "x"\nprimary = "#fff"\n[severity]\nhigh = "#zzzzzz"\n', "severity.high: not a colour"),
        ('name = "x"\n', "primary: Field required"),
        ('name = "x"\nprimary = "#fff"\ncolour = "#000"\n', "colour: Extra inputs are not permitted"),
        ("name = [\n", "not valid TOML"),
    ],
)
def test_a_broken_user_theme_is_reported_not_raised(tmp_path, text, problem):
    (tmp_path / "broken.toml").write_text(text)
    (tmp_path / "mine.toml").write_text('name = "mine"\nprimary = "#ff00ff"\n[severity]\ncritical = "#ffffff"\n')
    found = load_themes(tmp_path)
    assert "mine" in found.themes and found.themes["mine"].variables["severity-critical"] == "#ffffff"
    assert len(found.problems) == 1 and "broken.toml" in found.problems[0] and problem in found.problems[0]


def test_theme_file_round_trip(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('name = "t"\nprimary = "ansi_red"\ndark = false\n[variables]\nproduction = "#123456"\n')
    theme = load_theme_file(path)
    assert theme.name == "t" and not theme.dark and theme.variables["production"] == "#123456"
    assert ThemeFile(name="u", primary="#000").to_theme().variables["severity-info"]


async def test_theme_flag_config_and_user_theme_errors_in_the_app(tmp_path):
    (tmp_path / "broken.toml").write_text('name = "broken"\nprimary = 12\n')
    app = DbVitalsApp(synthetic_settings(), registry=synthetic_registry(), run_on_start=False, probe_interval=None,
                      theme="dbvitals-light", user_theme_dir=tmp_path)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.pause()
        assert app.theme == "dbvitals-light"
        assert any("broken.toml" in n.message for n in app._notifications)

    settings = synthetic_settings().model_copy(update={"theme": "dbvitals-high-contrast"})
    app = DbVitalsApp(settings, registry=synthetic_registry(), run_on_start=False, probe_interval=None,
                      user_theme_dir=tmp_path / "none")
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.theme == "dbvitals-high-contrast"

    app = DbVitalsApp(synthetic_settings(), registry=synthetic_registry(), run_on_start=False, probe_interval=None,
                      theme="no-such-theme", user_theme_dir=tmp_path / "none")
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.pause()
        assert app.theme == "dbvitals-dark"
        assert any('theme "no-such-theme" not found' in n.message for n in app._notifications)


def test_high_contrast_critical_is_the_most_alarming_red(tmp_path):
    variables = load_themes(tmp_path).themes["dbvitals-high-contrast"].variables
    assert variables["severity-critical"] == "ansi_bright_red" and variables["severity-high"] == "ansi_red"
