"""The Isolation Forest's choice rule: the cheapest grid setting within the AUC tolerance of the best."""
import pytest

from models.training.iforest import choose


def result(n_estimators: int, max_samples: int | str, auc: float) -> dict:
    return {"n_estimators": n_estimators, "max_samples": max_samples, "max_features": 0.8, "validation_roc_auc": auc}


def test_cheapest_within_tolerance_wins() -> None:
    results = [result(200, 1024, 0.9165), result(100, 1024, 0.9150), result(50, 1024, 0.9146), result(50, 256, 0.9000)]
    # best 0.9165; 0.9146 is 0.0019 below it: eligible, and 50 trees is the fewest
    assert choose(results, tolerance=0.002) == 2
    # a tighter tolerance leaves only the best
    assert choose(results, tolerance=0.001) == 0


def test_fewer_trees_before_shallower_trees() -> None:
    results = [result(100, 256, 0.91), result(50, 1024, 0.91)]
    assert choose(results, tolerance=0.0) == 1
    # equal trees: the smaller max_samples ("auto" counts as 256) is cheaper
    assert choose([result(50, 1024, 0.91), result(50, "auto", 0.91)], tolerance=0.0) == 1


def test_equal_cost_prefers_the_higher_auc() -> None:
    results = [result(50, 256, 0.905), result(50, 256, 0.910)]
    assert choose(results, tolerance=0.01) == 1


def test_empty_grid_is_refused() -> None:
    with pytest.raises(ValueError):
        choose([], tolerance=0.002)
