"""Reading Prometheus text as a scraper would: samples by name and labels."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

# A job id (UUID) or a long run of digits in a label value would be an id leaking into labels.
ID_LIKE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-|\d{6,}", re.IGNORECASE)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample in an exposition: (sample name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """One sample's value; 0 when absent (a counter that never moved)."""
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def label_values(text: str, prefix: str = "scanqueue_") -> set[str]:
    """Every label value of our metrics (histogram bucket bounds aside)."""
    return {
        label_value
        for (name, labels) in samples(text)
        if name.startswith(prefix)
        for key, label_value in labels
        if key != "le"
    }


def id_like_labels(text: str) -> set[str]:
    """Label values of our metrics that look like an id."""
    return {label for label in label_values(text) if ID_LIKE.search(label)}


def moved(before: str, after: str, name: str, **labels: str) -> float:
    """How much a sample grew between two scrapes."""
    return value(after, name, **labels) - value(before, name, **labels)
