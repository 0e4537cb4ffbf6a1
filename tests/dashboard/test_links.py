"""Any link opens: every page with any subset of its URL parameters, none included, keeps working while each of
its controls is changed (the link without `?run=` used to fail on the first change: the run picker set its own
URL parameter, which is bound to it). AppTest; tests/dashboard/test_browser.py does the same in a real browser."""
from __future__ import annotations

import pytest
from dashboard_fixtures import COMPLETE, HOME, OTHER, RUNNING, dashboard_env, runs_dir  # noqa: F401
from streamlit.testing.v1 import AppTest

from dashboard import navigation

# Each page's URL parameters, a few subsets of them. None of them names a run.
PARTIAL = {
    "Overfitting": [{"metric": "accuracy"}, {"fold": "2", "gap_metric": "accuracy"}],
    "Classes": [{"true": "class_c"}, {"pred": "class_b", "scale": "row %"}],
    "Embeddings": [{"color": "correct"}, {"class": "class_b", "space": "fold1"}],
    "Misclassified": [{"tab": "label_issues"}, {"true": "class_a", "role": "test"}, {"fold": "1", "role": "train"}],
    "Data": [{"tab": tab} for tab in ("sizes", "skipped", "duplicates", "label_issues", "outliers")]
            + [{"tab": "properties", "by": "outcome"}],
    "Compare": [{"with": OTHER}],
    "Review": [{"review": "3d,5r1,9k"}],
    "Experiments": [{"experiment": "no-such-experiment"}],
}


def open_url(page: str, **params: str) -> AppTest:
    app = AppTest.from_file(HOME, default_timeout=60)
    for key, value in params.items():
        app.query_params[key] = value
    if page != navigation.HOME:
        app.switch_page(navigation.PAGES[page])
    return checked(app.run())


def checked(app: AppTest) -> AppTest:
    assert not app.exception, app.exception[0].stack_trace
    return app


def choices(app: AppTest) -> dict[str, object]:
    """The page's single- and multi-choice controls by key (those in the review popovers have tests of their own)."""
    return {w.key: w for kind in ("selectbox", "radio", "multiselect") for w in app.get(kind)
            if w.key and not w.key.endswith("-action") and not w.proto.disabled}


def change(widget) -> bool:
    """Set the control to another of its values; False when it has no other."""
    if type(widget).__name__ == "Multiselect":
        widget.set_value([] if widget.value else widget.options[:1])
        return True
    others = [o for o in widget.options if o != str(widget.value)]
    if str(widget.value) not in widget.options or not others:   # no other value (or labels that are not values)
        return False
    if type(widget).__name__ == "Selectbox":
        widget.select_index(widget.options.index(others[0]))
    else:
        widget.set_value(others[0])
    return True


def pick_run(app: AppTest, run: str) -> AppTest:
    choices(app)["run"].set_value(run)
    return checked(app.run())


def change_every_control(app: AppTest, run: str, only_first: bool = False) -> list[str]:
    """Change each control once (rerunning after each), the run staying the one picked; returns the keys."""
    changed = []
    for key in [k for k in choices(app) if k != "run"]:
        widget = choices(app).get(key)
        if widget is None or not change(widget):
            continue
        checked(app.run())
        assert choices(app)["run"].value == run, f"changing {key} changed the run"
        changed.append(key)
        if only_first:
            break
    checked(app.run())   # and once more: the failure came on the rerun after a change
    return changed


@pytest.mark.parametrize("page", [p for p in navigation.PAGES if p != "Experiments"])
def test_a_page_opened_without_parameters_works_through_every_control(dashboard_env, page: str) -> None:  # noqa: F811
    app = open_url(page)
    picker = choices(app)["run"]
    assert picker.value == picker.options[0] == RUNNING   # the newest run (still training, a few folds done)
    checked(app.run())
    app = pick_run(app, COMPLETE)
    changed = change_every_control(app, COMPLETE)
    if page in ("Overfitting", "Classes", "Embeddings", "Misclassified", "Compare"):
        assert changed   # these pages have controls of their own, and each was changed
    assert any("Link to this view" in m.value for m in app.sidebar.markdown)


@pytest.mark.parametrize("page, params", [(page, params) for page, subsets in PARTIAL.items() for params in subsets],
                         ids=lambda value: "&".join(f"{k}={v}" for k, v in value.items())
                         if isinstance(value, dict) else value)
def test_a_page_opened_with_some_of_its_parameters_works(dashboard_env, page: str, params: dict) -> None:  # noqa: F811
    app = open_url(page, **params)
    if page == "Experiments":   # not about one run; the fixture runs folder has no experiments
        assert any("No experiments" in i.body for i in app.info)
        return
    change_every_control(pick_run(app, COMPLETE), COMPLETE, only_first=True)


def test_a_page_opened_with_the_run_alone_keeps_it_through_every_control(dashboard_env) -> None:  # noqa: F811
    app = open_url("Misclassified", run=OTHER)
    assert change_every_control(app, OTHER) == ["true", "pred", "fold", "role", "cam"]
