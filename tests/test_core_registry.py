"""Plugin loading: entry points, failure isolation, strict and disable switches, lookups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from rebench_core import hookimpl
from rebench_core.registry import PluginError, UnknownNameError, load_plugins


def install_fake_plugin(root: Path, name: str, module_source: str | None) -> None:
    """A distribution with one `rebench` entry point, visible through PYTHONPATH=root."""
    dist = root / f"{name}-1.2.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text(f"[rebench]\n{name} = {name}_mod\n")
    if module_source is not None:
        (root / f"{name}_mod.py").write_text(textwrap.dedent(module_source))


def list_plugins(root: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rebench_core.cli.list", "plugins", "--json"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(root), **env}, timeout=120)


GOOD = """
    from rebench_core import hookimpl
    @hookimpl
    def rebench_register_scaffolds(register):
        register("third_party_scaffold", "somewhere:Thing")
"""


def test_a_broken_plugin_is_reported_by_name_and_skipped(tmp_path):
    install_fake_plugin(tmp_path, "goodplug", GOOD)
    install_fake_plugin(tmp_path, "brokenplug", "raise ImportError('needs a missing SDK')\n")
    result = list_plugins(tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {r["plugin"]: r for r in json.loads(result.stdout)}
    assert rows["brokenplug"]["error"] == "ImportError: needs a missing SDK"
    assert rows["brokenplug"]["distribution"] == "brokenplug" and rows["brokenplug"]["version"] == "1.2.3"
    assert rows["goodplug"]["registered"] == "scaffold third_party_scaffold" and rows["goodplug"]["error"] == ""
    assert rows["scripted"]["registered"] == "model backend scripted"  # built-ins load the same way


def test_strict_mode_makes_a_broken_plugin_fatal(tmp_path):
    install_fake_plugin(tmp_path, "brokenplug", "raise ImportError('needs a missing SDK')\n")
    result = list_plugins(tmp_path, REBENCH_STRICT_PLUGINS="1")
    assert result.returncode == 2
    assert "plugin 'brokenplug'" in result.stderr and "needs a missing SDK" in result.stderr


def test_disabled_plugins_are_not_imported(tmp_path):
    install_fake_plugin(tmp_path, "brokenplug", "raise ImportError('should not be imported')\n")
    result = list_plugins(tmp_path, REBENCH_DISABLE_PLUGINS="brokenplug,other")
    rows = {r["plugin"]: r for r in json.loads(result.stdout)}
    assert rows["brokenplug"]["error"] == "disabled by REBENCH_DISABLE_PLUGINS"


def test_a_misspelled_hook_is_reported_by_plugin_and_the_others_keep_working(tmp_path):
    install_fake_plugin(tmp_path, "typoplug", """
        from rebench_core import hookimpl
        @hookimpl
        def rebench_register_scafolds(register):
            pass
    """)
    result = list_plugins(tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {r["plugin"]: r for r in json.loads(result.stdout)}
    assert "rebench_register_scafolds" in rows["typoplug"]["error"]
    assert "did you mean 'rebench_register_scaffolds'" in rows["typoplug"]["error"]
    assert not rows["modular"]["error"] and "scaffold modular" in rows["modular"]["registered"]
    strict = list_plugins(tmp_path, REBENCH_STRICT_PLUGINS="1")
    assert strict.returncode == 2 and "plugin 'typoplug' implements hooks that do not exist" in strict.stderr


def test_a_missing_dependency_names_what_to_install(tmp_path, monkeypatch):
    (tmp_path / "sdk_backend_mod.py").write_text("import no_such_sdk_package_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def backends(register):
        register("needs_sdk", "sdk_backend_mod:Backend", requires="rebench-harness[sdk]")

    registry = load_plugins(extra_plugins=[("sdkplug", _plugin(rebench_register_model_backends=backends))])
    with pytest.raises(PluginError, match=r"plugin 'sdkplug'.*needs the Python package 'no_such_sdk_package_xyz'.*"
                                          r"pip install 'rebench-harness\[sdk\]'"):
        registry.backends["needs_sdk"].load()


def _plugin(**hooks) -> types.ModuleType:
    module = types.ModuleType("p")
    for name, fn in hooks.items():
        setattr(module, name, hookimpl(fn))
    return module


def test_duplicate_names_name_both_plugins():
    def envs(register):
        register("guess_number", "x:Y")

    with pytest.raises(PluginError, match=r"registered twice: by plugin 'example' and by plugin 'copycat'"):
        load_plugins(extra_plugins=[("copycat", _plugin(rebench_register_environments=envs))])


def test_factories_are_lazy_and_import_errors_name_the_plugin():
    def scaffolds(register):
        register("lazy", "module_that_does_not_exist:Thing")

    registry = load_plugins(extra_plugins=[("lazyplug", _plugin(rebench_register_scaffolds=scaffolds))])
    entry = registry.scaffold("lazy")
    with pytest.raises(PluginError, match=r"plugin 'lazyplug' registered 'lazy'.*No module named"):
        entry.load()


def test_loading_plugins_imports_no_sdk_or_torch():
    code = ("import sys; from rebench_core.registry import load_plugins; load_plugins(); "
            "print(sorted(m for m in ('openai', 'anthropic', 'litellm', 'torch', 'transformers', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr


def test_model_resolution():
    def backends(register):
        register("acme", "x:Y", claims=("acme-*", "shared-*"))
        register("other", "x:Y", claims=("shared-*",))

    registry = load_plugins(extra_plugins=[("acme", _plugin(rebench_register_model_backends=backends))])
    assert registry.resolve_model("acme-large")[0].name == "acme"
    assert registry.resolve_model("other/anything")[1] == "anything"
    with pytest.raises(UnknownNameError, match="claimed by several providers: acme, other"):
        registry.resolve_model("shared-x")
    with pytest.raises(UnknownNameError, match="installed providers:.*acme.*scripted"):
        registry.resolve_model("mystery-model")


def test_unknown_names_list_what_exists():
    registry = load_plugins()
    with pytest.raises(UnknownNameError, match="unknown environment 'gues'.*Did you mean guess_number"):
        registry.environment("gues")
    with pytest.raises(UnknownNameError, match="Installed:.*bisect"):
        registry.scaffold("nope")


def test_run_event_observers_see_every_event(tmp_path, script):
    import asyncio

    from rebench_core.harness import RunConfig, run
    from rebench_core.limits import Limits

    seen = []

    def rebench_run_event(run, event):
        seen.append(event["type"])

    registry = load_plugins(extra_plugins=[("observer", _plugin(rebench_run_event=rebench_run_event))])
    summary = asyncio.run(run(RunConfig(environment="guess_number", scaffold="bisect", size="small",
                                        model=script([{"content": "737"}]), limits=Limits(time_s=30),
                                        out_dir=tmp_path / "run", cache_dir=tmp_path / "c"), registry))
    assert summary["status"] == "submitted"
    assert seen[0] == "run_start" and seen[-1] == "run_end" and seen.count("score") == 3  # initial, the exact guess, final


def test_doctor_names_the_extra_a_backend_needs(tmp_path):
    install_fake_plugin(tmp_path, "sdkless", """
        from rebench_core import hookimpl
        @hookimpl
        def rebench_register_model_backends(register):
            register("sdkless", "sdkless_backend:Backend", claims=("sdkless-1",), requires="sdkless-plugin[sdk]")
    """)
    (tmp_path / "sdkless_backend.py").write_text("import sdk_that_is_not_installed\n")
    done = subprocess.run([sys.executable, "-m", "rebench_core.cli.doctor"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert ("missing: model backend 'sdkless' (plugin 'sdkless') needs the Python package "
            "'sdk_that_is_not_installed', which is not installed: pip install 'sdkless-plugin[sdk]'") in done.stderr
    run = subprocess.run([sys.executable, "-m", "rebench_core.cli.run", "--env", "guess_number", "--size", "small",
                          "--scaffold", "bisect", "--model", "sdkless-1", "--out", str(tmp_path / "run")],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tmp_path)}, timeout=120)
    assert run.returncode == 2 and "pip install 'sdkless-plugin[sdk]'" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "run").exists()
