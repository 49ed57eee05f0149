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


def test_a_run_that_uses_no_llm_feature_does_not_import_torch(pytester):
    pytester.makeconftest(
        """
        import sys

        def pytest_sessionfinish(session):
            print("torch imported:", "torch" in sys.modules)
        """
    )
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*torch imported: False*"])
