from functools import partial

from shipper.config import parse_config
from shipper.topology import apply_chain, routes_for
from shipper.transforms import build_transform
from shipper.transforms.config import AddFieldsConfig, FilterConfig, RedactConfig
from tests.factories import event

# Events as a source makes them from a JSON line in the ``ecvi`` namespace.
_ev = partial(event, meta={"kubernetes": {"namespace": "ecvi"}}, derived=True)


def test_add_fields_templates_and_overwrite() -> None:
    fn = build_transform(AddFieldsConfig(type="add_fields", inputs=["a"],
                                         fields={"cluster": "prod", "ns": "{{ kubernetes.namespace }}",
                                                 "level": "X"}))
    [e] = fn([_ev(level="INFO")])
    assert e.record == {"level": "INFO", "cluster": "prod", "ns": "ecvi"}


def test_filter_by_level_and_match() -> None:
    fn = build_transform(FilterConfig(type="filter", inputs=["a"], min_level="WARNING",
                                      match={"service": "api"}))
    evs = [_ev(level="INFO", service="api"), _ev(level="ERROR", service="api"),
           _ev(level="ERROR", service="worker"), _ev(level="warning", service="api")]
    assert [e.record["level"] for e in fn(evs)] == ["ERROR", "warning"]


def test_redact_rewrites_record_and_line() -> None:
    fn = build_transform(RedactConfig(type="redact", inputs=["a"], keys=["ssn"]))
    [e] = fn([_ev(message="login", password="hunter2", nested={"ssn": "123", "ok": 1},
                  header="Authorization: Bearer abcdefghijklmnop")])
    assert e.record["password"] == "[REDACTED]"
    assert e.record["nested"] == {"ssn": "[REDACTED]", "ok": 1}
    assert "hunter2" not in e.raw and "abcdefghijklmnop" not in e.raw and "123" not in e.raw
    assert e.derived is False


def test_chains_feed_their_sinks_and_leave_other_routes_untouched() -> None:
    cfg = parse_config("""
sources: {app: {type: file, include: [x]}}
transforms:
  red: {type: redact, inputs: [app]}
  errors: {type: filter, inputs: [red], min_level: ERROR}
sinks:
  raw: {type: file, inputs: [app], path: a}
  clean: {type: file, inputs: [red], path: b}
  alerts: {type: file, inputs: [errors], path: c}
""", env={})
    routes = routes_for(cfg, "app")
    assert sorted(sinks for _chain, sinks in routes) == [["alerts"], ["clean"], ["raw"]]
    evs = [_ev(level="ERROR", token="t0p"), _ev(level="INFO", token="t0p")]
    out = {tuple(sinks): apply_chain(chain, evs) if chain else evs for chain, sinks in routes}
    assert [e.record["token"] for e in out[("raw",)]] == ["t0p", "t0p"]
    assert [e.record["token"] for e in out[("clean",)]] == ["[REDACTED]", "[REDACTED]"]
    assert len(out[("alerts",)]) == 1
