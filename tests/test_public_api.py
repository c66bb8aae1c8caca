"""The public API is exactly what ``chainrule.__init__`` exports (httpx's habit)."""

import chainrule


def test_all_names_exist_and_are_public():
    for name in chainrule.__all__:
        assert hasattr(chainrule, name), name
    public = {n for n in dir(chainrule) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(chainrule, n)).__name__ == "module"}
    assert public - modules == set(chainrule.__all__) - {"__version__"}


def test_unknown_family_is_a_clear_error(tmp_path):
    import json

    import pytest

    from chainrule.errors import ModelFormatError

    (tmp_path / "config.json").write_text(
        json.dumps({"format": "chainrule-model", "format_version": 1, "family": "nope"})
    )
    with pytest.raises(ModelFormatError, match="unknown model family 'nope'"):
        chainrule.load_model(tmp_path)
