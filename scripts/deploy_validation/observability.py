"""Prometheus scrape config, Grafana provisioning and dashboards, OpenTelemetry collector."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from .code import Code
from .report import Report, run, tool

# Labels Prometheus adds to every scraped series, usable in any query.
TARGET_LABELS = {"job", "instance", "service", "namespace", "pod"}


def validate_prometheus(root: Path, report: Report) -> None:
    report.section("Prometheus")
    config_file = root / "deploy/compose/prometheus/prometheus.yml"
    result = run([tool("SCIMFLOW_PROMTOOL"), "check", "config", str(config_file)])
    report.check(
        result.returncode == 0,
        "promtool check config prometheus.yml",
        (result.stdout + result.stderr).strip(),
    )
    compose = yaml.safe_load((root / "deploy/compose/compose.yaml").read_text())
    services = set(compose["services"])
    config = yaml.safe_load(config_file.read_text())
    for job in config.get("scrape_configs", []):
        targets = [t for sc in job.get("static_configs", []) for t in sc.get("targets", [])]
        hosts = {t.split(":")[0] for t in targets}
        unknown = hosts - services - {"localhost"}
        report.check(
            not unknown,
            f"scrape job {job['job_name']} targets compose services",
            f"unknown hosts {sorted(unknown)}",
        )
        for target in targets:
            host, _, port = target.partition(":")
            listens = scimflow_listeners(compose["services"].get(host, {}))
            if listens:
                report.check(
                    any(address.rsplit(":", 1) == ["0.0.0.0", port] for address in listens),
                    f"scrape target {target} is where {host} serves /metrics to other containers",
                    f"{host} listens on {', '.join(listens)}",
                )


def scimflow_listeners(service: dict) -> list[str]:
    """Where a compose scimflow service serves /metrics: the API on SCIMFLOW_LISTEN, the
    projector and fanout on SCIMFLOW_METRICS_LISTEN."""
    environment = service.get("environment") or {}
    return [str(environment[k]) for k in ("SCIMFLOW_LISTEN", "SCIMFLOW_METRICS_LISTEN") if k in environment]


def validate_grafana(root: Path, code: Code, report: Report) -> None:
    report.section("Grafana")
    grafana = root / "deploy/compose/grafana"
    datasources = yaml.safe_load((grafana / "provisioning/datasources/datasources.yaml").read_text())
    prometheus_uids = {d["uid"] for d in datasources["datasources"] if d["type"] == "prometheus"}
    report.check(bool(prometheus_uids), "a Prometheus datasource is provisioned")
    provider = yaml.safe_load((grafana / "provisioning/dashboards/dashboards.yaml").read_text())
    compose = yaml.safe_load((root / "deploy/compose/compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    dashboard_dir = provider["providers"][0]["options"]["path"]
    report.check(
        any(m.endswith(f":{dashboard_dir}:ro") or m.endswith(f":{dashboard_dir}") for m in mounts),
        f"the dashboards provider path {dashboard_dir} is mounted into grafana",
    )
    for path in sorted((grafana / "dashboards").glob("*.json")):
        try:
            dashboard = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            report.check(False, f"{path.name} is JSON", str(error))
            continue
        report.check(
            bool(dashboard.get("uid")) and bool(dashboard.get("title")),
            f"{path.name} is JSON with a uid and title",
        )
        panels = list(walk_panels(dashboard.get("panels", [])))
        ids = [p["id"] for p in panels]
        report.check(len(ids) == len(set(ids)), f"{path.name}: panel ids are unique")
        variables = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
        for panel in panels:
            for target in panel.get("targets", []):
                check_query(panel, target, code, variables, prometheus_uids, report)


def walk_panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def check_query(
    panel: dict, target: dict, code: Code, variables: set[str], uids: set[str], report: Report
) -> None:
    expr = target.get("expr", "")
    what = f"panel {panel['title']!r} {target.get('refId')}"
    uid = target.get("datasource", {}).get("uid", "")
    report.check(uid.strip("${}") in variables or uid in uids, f"{what}: datasource {uid} exists")
    problems = []
    used_metrics = []
    for name in set(re.findall(r"\bscimflow_[a-z0-9_]+", expr)):
        base, suffix = name, ""
        for candidate in ("_bucket", "_count", "_sum"):
            if name.endswith(candidate) and name[: -len(candidate)] in code.metrics:
                base, suffix = name[: -len(candidate)], candidate
        if base not in code.metrics:
            problems.append(f"metric {name} is not registered by the code")
            continue
        kind, labels = code.metrics[base]
        if suffix and kind != "histogram":
            problems.append(f"{name}: {base} is not a histogram")
        used_metrics.append((base, suffix, labels))
    if not used_metrics and not problems:
        problems.append("the query names no scimflow metric")
    known_labels = set(TARGET_LABELS)
    for _base, suffix, labels in used_metrics:
        known_labels |= labels | ({"le"} if suffix == "_bucket" else set())
    used_labels = set()
    for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        used_labels.update(label.strip() for label in group.split(",") if label.strip())
    for matcher in re.findall(r"\{([^}]*)\}", expr):
        used_labels.update(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matcher))
    unknown = used_labels - known_labels
    if unknown and used_metrics:
        problems.append(f"labels {sorted(unknown)} are not on {sorted({m[0] for m in used_metrics})}")
    report.check(not problems, f"{what}: {expr[:80]}", "; ".join(problems))


def validate_otel(root: Path, report: Report) -> None:
    report.section("OpenTelemetry collector")
    config = yaml.safe_load((root / "deploy/compose/otel/collector.yaml").read_text())
    service = config.get("service", {})
    for kind in ("receivers", "processors", "exporters", "connectors"):
        config.setdefault(kind, {})
    for pipeline, parts in service.get("pipelines", {}).items():
        problems = []
        for kind in ("receivers", "processors", "exporters"):
            for component in parts.get(kind, []):
                if component not in config[kind] and component not in config["connectors"]:
                    problems.append(f"{kind[:-1]} {component}")
        report.check(
            bool(parts.get("receivers")) and bool(parts.get("exporters")) and not problems,
            f"pipeline {pipeline}: every component is defined",
            "undefined " + ", ".join(problems),
        )
    unknown = set(service.get("extensions", [])) - set(config.get("extensions", {}) or {})
    report.check(not unknown, "service extensions are defined", f"undefined {sorted(unknown)}")
    grpc = config["receivers"].get("otlp", {}).get("protocols", {}).get("grpc", {}).get("endpoint", "")
    compose = yaml.safe_load((root / "deploy/compose/compose.yaml").read_text())
    endpoint = compose["x-scimflow-env"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    report.check(
        grpc.rsplit(":", 1)[-1] == endpoint.rsplit(":", 1)[-1],
        f"the services export to the collector's OTLP gRPC port ({endpoint})",
        f"receiver listens on {grpc!r}",
    )
