import numpy as np
import pandas as pd

from core.diagnostics.label_issues import label_issues


def test_planted_label_flips_are_found_ranked_first_with_the_true_class_suggested():
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c"]
    true = rng.integers(0, 3, 600)
    probs = rng.dirichlet([1, 1, 1], 600) * 0.4        # a model that is right, with varied confidence
    probs[np.arange(600), true] += 0.6
    flipped = rng.choice(600, 12, replace=False)
    probs[flipped] = 0.01                              # ... and sure of the true class where the label is wrong
    probs[flipped, true[flipped]] = 0.98
    given = true.copy()
    given[flipped] = (true[flipped] + 1) % 3
    oof = pd.DataFrame({"sample_id": np.arange(600), "label": given})
    samples = pd.DataFrame({"sample_id": np.arange(600), "path": [f"x/{i}.jpg" for i in range(600)]})

    issues = label_issues(oof, probs, samples, classes)

    assert set(issues["sample_id"]) == set(flipped)
    assert issues["quality"].is_monotonic_increasing
    row = issues.set_index("sample_id").loc[flipped[0]]
    assert row["label"] == classes[given[flipped[0]]] and row["suggested_label"] == classes[true[flipped[0]]]
