"""The package is a pytest plugin registered through its entry point."""

from importlib.metadata import entry_points


def test_entry_point_names_the_plugin_module():
    (entry,) = [e for e in entry_points(group="pytest11") if e.name == "llmprec"]
    assert entry.value == "pytest_llmprec.plugin"


def test_help_lists_the_options_group(pytester):
    result = pytester.runpytest_subprocess("--help")
    result.stdout.fnmatch_lines(["*LLM precision comparison (pytest-llmprec)*", "*--llm-standard=NAME*"])


def test_markers_are_registered(pytester):
    result = pytester.runpytest_subprocess("--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.llm_precision(*"])


def test_importing_the_package_does_not_import_torch(pytester):
    pytester.makepyfile(
        """
        import sys

        def test_lazy():
            import pytest_llmprec
            assert "pytest_llmprec.plugin" in sys.modules
            assert callable(pytest_llmprec.compare_tensors)
        """
    )
    script = "import sys, pytest_llmprec, pytest_llmprec.plugin; print('torch' in sys.modules)"
    result = pytester.run(sys_executable(), "-c", script)
    assert result.stdout.lines[-1] == "False"


def sys_executable() -> str:
    import sys

    return sys.executable
