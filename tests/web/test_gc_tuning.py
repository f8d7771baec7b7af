"""The web process's garbage-collector thresholds and its pause histogram (applied by `python -m web`: tests/web/test_main.py)."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from engine.config import Settings
from web import gc_tuning
from web.gc_tuning import GC_PAUSE_SECONDS, tune_garbage_collector


@pytest.fixture
def restore_gc() -> Iterator[None]:
    """Put back the thresholds and callbacks of this test process after the test."""
    thresholds = gc.get_threshold()
    callbacks = list(gc.callbacks)
    yield
    gc.set_threshold(*thresholds)
    gc.callbacks[:] = callbacks


def _pause_count(generation: int) -> float:
    for metric in GC_PAUSE_SECONDS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels == {"generation": str(generation)}:
                return sample.value
    return 0.0


def test_thresholds_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GC_THRESHOLDS", "[1000, 5, 7]")
    assert Settings(_env_file=None).gc_thresholds == (1000, 5, 7)  # type: ignore[call-arg]

    assert Settings.model_fields["gc_thresholds"].default == (50_000, 20, 20)


@pytest.mark.parametrize("value", ["[0, 10, 10]", "[700, 10]", "[700, -1, 10]", "700"])
def test_invalid_thresholds_rejected(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Zero would switch a generation's collection off; other shapes are not thresholds."""
    monkeypatch.setenv("GC_THRESHOLDS", value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_pauses_recorded_once_per_process(restore_gc: None) -> None:
    tune_garbage_collector((12_345, 7, 9))
    tune_garbage_collector((12_345, 7, 9))
    assert gc.get_threshold() == (12_345, 7, 9)
    assert gc.callbacks.count(gc_tuning._observe) == 1

    before = _pause_count(2)
    gc.collect()
    assert _pause_count(2) == before + 1


def test_slow_pause_logged(restore_gc: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    tune_garbage_collector((700, 10, 10))
    monkeypatch.setattr(gc_tuning, "SLOW_PAUSE_S", 0.0)
    with caplog.at_level(logging.WARNING, logger="jangteo.web.gc"):
        gc.collect()
    assert any("slow gc pause generation=2" in record.getMessage() for record in caplog.records)
