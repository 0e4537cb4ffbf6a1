"""The class hierarchy's views: cards a level up, errors kept inside a superclass, the members of each."""
from __future__ import annotations

import json

from core.testing.synthetic import make_synthetic_run
from core.views import superclasses


def test_a_run_with_superclasses_has_cards_a_line_on_errors_and_members(tmp_path):
    run = make_synthetic_run(tmp_path / "runs", "h", 120, 6, 3, 8, seed=1, files_per_class=2, diagnostics=False,
                             n_superclasses=2)
    metrics = json.loads((run / "metrics.json").read_text())
    assert superclasses.superclass_names(metrics) == ["super_0", "super_1"]
    cards = superclasses.superclass_cards(metrics)
    assert [c["title"] for c in cards] == ["Superclass test accuracy", "Superclass test balanced accuracy",
                                           "Superclass test macro f1"]
    block = metrics["superclass"]["oof"]["val"]
    line = superclasses.errors_within(metrics)
    assert line.startswith("Class errors that stay inside the true superclass, out-of-fold: "
                           f"{block['errors_within_superclass']} of {block['class_errors']} (")
    assert "test ensemble: " in line
    table = superclasses.members(metrics)
    assert table.to_dict("records")[0] == {"superclass": "super_0", "classes": 3,
                                           "members": "class_a, class_c, class_e"}


def test_a_flat_run_has_no_hierarchy_to_show(tmp_path):
    run = make_synthetic_run(tmp_path / "runs", "f", 60, 3, 3, 8, seed=1, files_per_class=2, diagnostics=False)
    metrics = json.loads((run / "metrics.json").read_text())
    assert superclasses.superclass_cards(metrics) == [] and superclasses.errors_within(metrics) is None
    assert superclasses.members(metrics).empty and superclasses.superclass_names(metrics) == []
