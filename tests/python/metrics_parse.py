"""The official Prometheus Python client's parsers read a built-in's /metrics in both
formats: the classic text format (0.0.4) when asked for it, OpenMetrics otherwise.

Env: CLASSIC_FILE, OPENMETRICS_FILE (the two bodies), COUNTER (a counter family's name,
without `_total`), HISTOGRAM (optional: a histogram family with a sample).
"""
import os

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_open
from prometheus_client.parser import text_string_to_metric_families as parse_classic

counter = os.environ["COUNTER"]
for name, parse, path in [("classic", parse_classic, os.environ["CLASSIC_FILE"]),
                          ("openmetrics", parse_open, os.environ["OPENMETRICS_FILE"])]:
    with open(path) as f:
        families = {fam.name: fam for fam in parse(f.read())}
    fam = families.get(counter)
    assert fam is not None, (name, sorted(families))
    assert fam.type == "counter", (name, fam.type)
    totals = [s for s in fam.samples if s.name == counter + "_total"]
    assert totals and all(s.value >= 1 for s in totals), (name, fam.samples)
    assert not any(n.startswith(counter + "_created") for n in families), (name, sorted(families))
    histogram = os.environ.get("HISTOGRAM")
    if histogram:
        fam = families.get(histogram)
        assert fam is not None and fam.type == "histogram", (name, sorted(families))
        assert any(s.name == histogram + "_count" and s.value >= 1 for s in fam.samples), (name, fam.samples)
    print("ok", name, len(families), "families")
