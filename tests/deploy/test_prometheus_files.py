"""deploy/prometheus/: the scrape configuration, alert rules and dashboard parse, and name
only metrics the code exposes."""

import json
import re

import yaml

from tests.conftest import PROJECT_DIR

PROMETHEUS = PROJECT_DIR / "deploy" / "prometheus"
METRIC = re.compile(r"\bleavehome_[a-z_]+")
SUFFIXES = ("_total", "_count", "_bucket", "_sum")


def _exposed():
    source = (PROJECT_DIR / "leavehome" / "metrics.py").read_text()
    names = set(re.findall(r'"(leavehome_[a-z_]+)"', source))
    return names | {name + suffix for name in names for suffix in SUFFIXES}


def test_alert_rules_and_dashboard_name_only_exposed_metrics():
    exposed = _exposed()
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    # What an operator must hear about (issue: backlog age, push failures, beat, retention).
    assert {"LeaveHomeUploadMatchingBehind", "LeaveHomePushFailing", "LeaveHomeBeatSilent"} <= alerts
    assert "LeaveHomeRetentionNotRun" in alerts
    dashboard = json.loads((PROMETHEUS / "grafana-dashboard.json").read_text())
    expressions += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expression in expressions for name in METRIC.findall(expression)}
    assert used and used <= exposed, sorted(used - exposed)


def test_scrape_config_sends_the_token_to_both_endpoints():
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"leavehome-web", "leavehome-worker"}
    for job in jobs.values():
        assert job["metrics_path"] == "/metrics"
        assert job["authorization"]["type"] == "Bearer"
