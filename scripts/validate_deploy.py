#!/usr/bin/env python3
"""Offline validation of the deployment artifacts (Dockerfile, deploy/compose, deploy/k8s).

Run by scripts/validate-deploy.sh, which installs the tools and passes their paths in the
environment. Every check prints `ok` or `FAIL` with the reason; the last line counts them and
the exit status is 1 if anything failed. `--root DIR` validates another checkout (the
self-test breaks a copy on purpose and expects a failure).

What is checked, and against what:
- Kubernetes: `kustomize build deploy/k8s`, then every object against the Kubernetes OpenAPI
  schemas of kubernetes-validate (strict: unknown fields fail); KEDA ScaledObjects against
  KEDA's CRD schema (npm @kubernetes-models/keda) plus the field names KEDA documents; then
  references between objects (ConfigMaps, Secrets, claims, selectors, scale targets, ports).
- Compose: the compose-spec JSON schema (check-jsonschema's vendored copy), then references
  (depends_on, mounted files, healthchecks).
- Both: every scimflow subcommand and SCIMFLOW_* variable they use exists in the Rust
  sources; the projector's autoscaling matches the topic, group and partition count.
- Prometheus: `promtool check config`; scrape targets are compose services.
- Grafana: the dashboard is JSON, every metric a query names is registered by the Rust code,
  with the labels the code gives it.
- OpenTelemetry collector: every component a pipeline names is defined; the OTLP port matches
  what the services export to.
- Dockerfile: hadolint, and every COPY source exists, is not excluded by .dockerignore, every
  workspace member is copied, and the built package and binary exist.
- Fanout configs: only fields that fanout/src/config.rs accepts.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

K8S_VERSION = os.environ.get("SCIMFLOW_K8S_VERSION", "1.33.0")
# Secrets that the manifests reference but that are created per cluster (from the template).
SECRET_TEMPLATE = "deploy/k8s/secret.example.yaml"
CORE_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}

# Field names of KEDA's ScaledObject and kafka trigger (keda.sh docs, KEDA 2.x). The CRD
# schema does not reject unknown fields (the API server prunes them silently), so a typo
# such as `maxReplicas` would pass it unnoticed; these lists catch that.
KEDA_SPEC_FIELDS = {
    "scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
    "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers",
}
KEDA_TRIGGER_FIELDS = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
KEDA_KAFKA_METADATA = {
    "bootstrapServers", "consumerGroup", "topic", "lagThreshold", "activationLagThreshold",
    "offsetResetPolicy", "allowIdleConsumers", "excludePersistentLag", "scaleToZeroOnInvalidOffset",
    "limitToPartitionsWithLag", "ensureEvenDistributionOfPartitions", "partitionLimitation",
    "version", "sasl", "tls", "unsafeSsl", "tlsServerName",
}
# Labels Prometheus adds to every scraped series, usable in any query.
TARGET_LABELS = {"job", "instance", "service", "namespace", "pod"}


class Report:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, ok: bool, what: str, why: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"ok   {what}")
        else:
            self.failed += 1
            print(f"FAIL {what}{': ' + why if why else ''}")
        return ok

    def section(self, title: str) -> None:
        print(f"\n== {title}")


def run(command: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, input=stdin, capture_output=True, text=True)


def tool(name: str) -> str:
    path = os.environ.get(name)
    if not path:
        sys.exit(f"{name} is not set: run scripts/validate-deploy.sh, which installs the tools")
    return path


# ---- facts from the Rust sources -----------------------------------------------------------

class Code:
    """What the scimflow sources define: subcommands, environment variables, metrics."""

    def __init__(self, root: Path) -> None:
        self.root = root
        sources = [p for p in root.rglob("*.rs") if "target" not in p.parts and ".git" not in p.parts]
        self.text = {p: p.read_text() for p in sources}
        self.subcommands = self._subcommands()
        self.env_vars = self._env_vars()
        self.metrics = self._metrics()

    def _subcommands(self) -> set[str]:
        main = (self.root / "cli/src/main.rs").read_text()
        block = re.search(r"enum Command \{(.*?)\n\}", main, re.S)
        names = re.findall(r"^    ([A-Z][A-Za-z]*)\b", block.group(1), re.M) if block else []
        return {re.sub(r"(?<!^)([A-Z])", r"-\1", name).lower() for name in names}

    def _env_vars(self) -> set[str]:
        names: set[str] = set()
        for text in self.text.values():
            names.update(re.findall(r'"(SCIMFLOW_[A-Z0-9_]+)"', text))
        return names

    def _metrics(self) -> dict[str, tuple[str, set[str]]]:
        """name -> (kind, labels), from `Opts::new("name", ...)` / `HistogramOpts::new(...)` and
        the label list that follows it."""
        metrics: dict[str, tuple[str, set[str]]] = {}
        for path, text in self.text.items():
            if "tests" in path.relative_to(self.root).parts:
                continue
            for match in re.finditer(r'(Histogram)?Opts::new\(\s*"(scimflow_[a-z0-9_]+)"', text):
                kind = "histogram" if match.group(1) else "other"
                tail = text[match.end():match.end() + 600]
                labels_match = re.search(r"&\[([^\]]*)\]", tail)
                labels = set(re.findall(r'"([a-z_]+)"', labels_match.group(1))) if labels_match else set()
                metrics[match.group(2)] = (kind, labels)
        return metrics

    def knows_env(self, name: str) -> bool:
        # SCIMFLOW_KAFKA_CLIENT_<KEY> is a passthrough of any librdkafka setting.
        return name in self.env_vars or name.startswith("SCIMFLOW_KAFKA_CLIENT_")


def load_yaml_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


# ---- Kubernetes ----------------------------------------------------------------------------

def validate_k8s(root: Path, code: Code, report: Report) -> None:
    report.section("Kubernetes manifests (deploy/k8s)")
    k8s = root / "deploy/k8s"
    kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text())
    listed = set(kustomization.get("resources", []))
    on_disk = {p.name for p in k8s.glob("*.yaml")} - {"kustomization.yaml", Path(SECRET_TEMPLATE).name}
    report.check(on_disk <= listed, "kustomization lists every manifest file",
                 f"not listed: {sorted(on_disk - listed)}")
    report.check(listed <= on_disk, "every kustomization resource exists", f"missing: {sorted(listed - on_disk)}")

    built = run([tool("SCIMFLOW_KUSTOMIZE"), "build", str(k8s)])
    if not report.check(built.returncode == 0, "kustomize build deploy/k8s", built.stderr.strip()):
        return
    objects = [doc for doc in yaml.safe_load_all(built.stdout) if doc]
    templates = load_yaml_documents(root / SECRET_TEMPLATE)
    report.check(all(t.get("kind") == "Secret" for t in templates), f"{SECRET_TEMPLATE} holds only Secrets")

    import kubernetes_validate

    scaled_objects = []
    for obj in objects + templates:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if obj.get("apiVersion", "").startswith("keda.sh/"):
            scaled_objects.append(obj)
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            report.check(True, f"{name} (Kubernetes {K8S_VERSION} schema, strict)")
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(p) for p in error.path)
            report.check(False, f"{name} (Kubernetes {K8S_VERSION} schema, strict)", f"{path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            report.check(False, name, error.message)

    if scaled_objects:
        validate_keda(scaled_objects, report)
    check_references(objects, templates, code, report)


def validate_keda(scaled_objects: list[dict], report: Report) -> None:
    result = run(["node", str(Path(__file__).with_name("validate_keda.mjs")), tool("SCIMFLOW_DEPLOY_NODE_MODULES")],
                 stdin=json.dumps(scaled_objects))
    for line in result.stdout.splitlines():
        report.check(line.startswith("ok"), line[5:] + " (KEDA CRD schema)", "" if line.startswith("ok") else "")
    if result.returncode != 0 and not result.stdout.strip():
        report.check(False, "KEDA schema validation", result.stderr.strip())
    for obj in scaled_objects:
        name = obj["metadata"]["name"]
        spec = obj.get("spec", {})
        unknown = set(spec) - KEDA_SPEC_FIELDS
        report.check(not unknown, f"ScaledObject/{name} uses only KEDA's spec fields", f"unknown: {sorted(unknown)}")
        for trigger in spec.get("triggers", []):
            unknown = set(trigger) - KEDA_TRIGGER_FIELDS
            if trigger.get("type") == "kafka":
                unknown |= {f"metadata.{k}" for k in set(trigger.get("metadata", {})) - KEDA_KAFKA_METADATA}
            report.check(not unknown, f"ScaledObject/{name} trigger {trigger.get('type')} uses only documented fields",
                         f"unknown: {sorted(unknown)}")


def pod_spec(obj: dict) -> dict | None:
    spec = obj.get("spec", {})
    if obj.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {}).get("spec") if obj.get("kind") in CORE_WORKLOADS else None


def check_references(objects: list[dict], templates: list[dict], code: Code, report: Report) -> None:
    def names(kind: str, pool: list[dict]) -> set[str]:
        return {o["metadata"]["name"] for o in pool if o.get("kind") == kind}

    config_maps = names("ConfigMap", objects)
    secrets = names("Secret", objects) | names("Secret", templates)
    claims = names("PersistentVolumeClaim", objects)
    env_config = {}
    for obj in objects:
        if obj.get("kind") == "ConfigMap":
            for key, value in obj.get("data", {}).items():
                if re.fullmatch(r"[A-Z][A-Z0-9_]*", key):
                    env_config[key] = value
    for key in env_config:
        if key.startswith("SCIMFLOW_"):
            report.check(code.knows_env(key), f"ConfigMap variable {key} is read by scimflow", "no such variable in the sources")

    workloads = {}
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        workloads[(obj["kind"], obj["metadata"]["name"])] = obj
        problems = []
        for volume in spec.get("volumes", []):
            if "configMap" in volume and volume["configMap"]["name"] not in config_maps:
                problems.append(f"ConfigMap {volume['configMap']['name']}")
            if "secret" in volume and volume["secret"]["secretName"] not in secrets:
                problems.append(f"Secret {volume['secret']['secretName']}")
            if "persistentVolumeClaim" in volume and volume["persistentVolumeClaim"]["claimName"] not in claims:
                problems.append(f"PVC {volume['persistentVolumeClaim']['claimName']}")
        volume_names = {v["name"] for v in spec.get("volumes", [])}
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            for source in container.get("envFrom", []):
                if "configMapRef" in source and source["configMapRef"]["name"] not in config_maps:
                    problems.append(f"ConfigMap {source['configMapRef']['name']}")
                if "secretRef" in source and source["secretRef"]["name"] not in secrets:
                    problems.append(f"Secret {source['secretRef']['name']}")
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volume_names:
                    problems.append(f"volume {mount['name']}")
            ports = {p.get("name") for p in container.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str) and port not in ports:
                    problems.append(f"{container['name']} {probe} port {port}")
            for env in container.get("env", []):
                if env["name"].startswith("SCIMFLOW_") and not code.knows_env(env["name"]):
                    problems.append(f"variable {env['name']} (not read by scimflow)")
            if container.get("image", "").split(":")[0].endswith("scimflow") and "args" in container:
                subcommand = container["args"][0]
                if subcommand not in code.subcommands:
                    problems.append(f"scimflow subcommand {subcommand!r}")
        report.check(not problems, f"{name}: references resolve", "unknown " + ", ".join(problems))

    def template_labels(kind: str, name: str) -> dict | None:
        obj = workloads.get((kind, name))
        return obj["spec"]["template"]["metadata"].get("labels", {}) if obj else None

    pod_label_sets = [o["spec"]["template"]["metadata"].get("labels", {})
                      for o in workloads.values() if o["kind"] != "CronJob"]
    for obj in objects:
        kind, name = obj.get("kind"), obj["metadata"]["name"]
        if kind in ("Service", "PodDisruptionBudget"):
            selector = obj["spec"].get("selector", {})
            selector = selector.get("matchLabels", selector) if kind == "PodDisruptionBudget" else selector
            matches = any(all(labels.get(k) == v for k, v in selector.items()) for labels in pod_label_sets)
            report.check(matches, f"{kind}/{name} selects pods of a workload", f"no pod template has {selector}")
        if kind in ("HorizontalPodAutoscaler", "ScaledObject"):
            target = obj["spec"]["scaleTargetRef"]
            target_kind = target.get("kind", "Deployment")
            report.check(template_labels(target_kind, target["name"]) is not None,
                         f"{kind}/{name} scales an existing {target_kind}", f"no {target_kind}/{target['name']}")
        if kind == "ScaledObject":
            check_projector_scaling(obj, env_config, report)


def check_projector_scaling(obj: dict, env: dict, report: Report) -> None:
    """The kafka trigger must watch the projector's group on the commands topic, and never ask
    for more members than the topic has partitions (the extra ones would be idle)."""
    partitions = int(env.get("SCIMFLOW_KAFKA_COMMAND_PARTITIONS", "12"))
    prefix = env.get("SCIMFLOW_KAFKA_TOPIC_PREFIX", "scimflow.")
    group = env.get("SCIMFLOW_PROJECTOR_GROUP_ID", "scimflow-projector")
    name = obj["metadata"]["name"]
    spec = obj["spec"]
    report.check(spec.get("maxReplicaCount", 100) <= partitions,
                 f"ScaledObject/{name} maxReplicaCount <= {partitions} command partitions",
                 f"maxReplicaCount {spec.get('maxReplicaCount')}")
    for trigger in spec.get("triggers", []):
        if trigger.get("type") != "kafka":
            continue
        meta = trigger.get("metadata", {})
        expected = {"topic": prefix + "commands", "consumerGroup": group,
                    "bootstrapServers": env.get("SCIMFLOW_KAFKA_BROKERS")}
        wrong = {k: meta.get(k) for k, v in expected.items() if meta.get(k) != v}
        report.check(not wrong, f"ScaledObject/{name} watches {group} on {prefix}commands at the configured brokers",
                     f"{wrong}, expected {expected}")
        report.check(meta.get("allowIdleConsumers", "false") == "false",
                     f"ScaledObject/{name} does not scale past the partition count", "allowIdleConsumers is on")


# ---- Compose -------------------------------------------------------------------------------

def validate_compose(root: Path, code: Code, report: Report) -> None:
    report.section("Compose (deploy/compose)")
    compose_file = root / "deploy/compose/compose.yaml"
    result = run([tool("SCIMFLOW_CHECK_JSONSCHEMA"), "--builtin-schema", "vendor.compose-spec", str(compose_file)])
    report.check(result.returncode == 0, "compose.yaml against the compose-spec JSON schema",
                 (result.stdout + result.stderr).strip())
    compose = yaml.safe_load(compose_file.read_text())
    services = compose.get("services", {})
    volumes = set(compose.get("volumes", {}) or {})
    for name, service in services.items():
        problems = []
        for dependency in (service.get("depends_on") or {}):
            if dependency not in services:
                problems.append(f"depends_on {dependency}")
        for mount in service.get("volumes", []):
            source = mount.split(":")[0] if isinstance(mount, str) else mount.get("source", "")
            if source.startswith("."):
                if not (compose_file.parent / source).exists():
                    problems.append(f"mounted file {source}")
            elif source and source not in volumes:
                problems.append(f"volume {source}")
        environment = service.get("environment") or {}
        for key in environment:
            if key.startswith("SCIMFLOW_") and not code.knows_env(key):
                problems.append(f"variable {key} (not read by scimflow)")
        image = str(service.get("image", ""))
        if "scimflow" in image.split("/")[-1]:
            command = service.get("command") or ["serve"]
            if command[0] not in code.subcommands:
                problems.append(f"scimflow subcommand {command[0]!r}")
        report.check(not problems, f"service {name}: references resolve", "unknown " + ", ".join(problems))
    build = next((s["build"] for s in services.values() if "build" in s), None)
    if build:
        context = (compose_file.parent / build["context"]).resolve()
        report.check((context / build.get("dockerfile", "Dockerfile")).is_file(),
                     "the build context holds the Dockerfile", str(context))
    api = services.get("ingest-api", {})
    health = " ".join(api.get("healthcheck", {}).get("test", []))
    report.check("/readyz" in health or "/healthz" in health, "ingest-api has a /readyz or /healthz healthcheck")


# ---- Prometheus, Grafana, OpenTelemetry ----------------------------------------------------

def validate_prometheus(root: Path, report: Report) -> None:
    report.section("Prometheus")
    config_file = root / "deploy/compose/prometheus/prometheus.yml"
    result = run([tool("SCIMFLOW_PROMTOOL"), "check", "config", str(config_file)])
    report.check(result.returncode == 0, "promtool check config prometheus.yml", (result.stdout + result.stderr).strip())
    services = set(yaml.safe_load((root / "deploy/compose/compose.yaml").read_text())["services"])
    config = yaml.safe_load(config_file.read_text())
    for job in config.get("scrape_configs", []):
        hosts = {t.split(":")[0] for sc in job.get("static_configs", []) for t in sc.get("targets", [])}
        unknown = hosts - services - {"localhost"}
        report.check(not unknown, f"scrape job {job['job_name']} targets compose services", f"unknown hosts {sorted(unknown)}")


PROMQL_WORDS = {
    "sum", "rate", "irate", "increase", "histogram_quantile", "by", "without", "clamp_min", "clamp_max",
    "min", "max", "avg", "count", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "le", "topk", "bottomk", "abs", "time", "vector", "scalar", "delta", "deriv", "offset", "bool",
}


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
    report.check(any(m.endswith(f":{dashboard_dir}:ro") or m.endswith(f":{dashboard_dir}") for m in mounts),
                 f"the dashboards provider path {dashboard_dir} is mounted into grafana")
    for path in sorted((grafana / "dashboards").glob("*.json")):
        try:
            dashboard = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            report.check(False, f"{path.name} is JSON", str(error))
            continue
        report.check(bool(dashboard.get("uid")) and bool(dashboard.get("title")), f"{path.name} is JSON with a uid and title")
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


def check_query(panel: dict, target: dict, code: Code, variables: set[str], uids: set[str], report: Report) -> None:
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
    for base, suffix, labels in used_metrics:
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
        report.check(bool(parts.get("receivers")) and bool(parts.get("exporters")) and not problems,
                     f"pipeline {pipeline}: every component is defined", "undefined " + ", ".join(problems))
    unknown = set(service.get("extensions", [])) - set(config.get("extensions", {}) or {})
    report.check(not unknown, "service extensions are defined", f"undefined {sorted(unknown)}")
    grpc = config["receivers"].get("otlp", {}).get("protocols", {}).get("grpc", {}).get("endpoint", "")
    compose = yaml.safe_load((root / "deploy/compose/compose.yaml").read_text())
    endpoint = compose["x-scimflow-env"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    report.check(grpc.rsplit(":", 1)[-1] == endpoint.rsplit(":", 1)[-1],
                 f"the services export to the collector's OTLP gRPC port ({endpoint})", f"receiver listens on {grpc!r}")


# ---- Dockerfile ----------------------------------------------------------------------------

def dockerignore_patterns(root: Path) -> list[str]:
    path = root / ".dockerignore"
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def ignored(path: str, patterns: list[str]) -> bool:
    hit = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        bare = pattern[3:] if pattern.startswith("**/") else pattern
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, pattern) or fnmatch.fnmatchcase(prefix, bare) for prefix in prefixes):
            hit = not negate
    return hit


def validate_dockerfile(root: Path, report: Report) -> None:
    report.section("Dockerfile")
    dockerfile = root / "Dockerfile"
    result = run([tool("SCIMFLOW_HADOLINT"), "--no-color", "--config", str(root / ".hadolint.yaml"), str(dockerfile)])
    report.check(result.returncode == 0, "hadolint Dockerfile", (result.stdout + result.stderr).strip())
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    patterns = dockerignore_patterns(root)
    stages: list[str] = []
    copied: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if line.upper().startswith("FROM "):
            alias = re.search(r"\bAS\s+(\S+)", line, re.I)
            stages.append(alias.group(1) if alias else "")
        elif line.upper().startswith("COPY "):
            words = line.split()[1:]
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            source_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            if source_stage:
                report.check(source_stage in stages[:-1], f"COPY --from={source_stage} names an earlier stage")
                continue
            for source in paths[:-1]:
                exists = (root / source).exists()
                excluded = ignored(source.rstrip("/"), patterns)
                report.check(exists and not excluded, f"COPY {source} exists in the build context",
                             "missing" if not exists else "excluded by .dockerignore")
                copied.add(source.rstrip("/"))
    workspace = tomllib.loads((root / "Cargo.toml").read_text())["workspace"]
    missing = [m for m in workspace["members"] if m not in copied]
    report.check(not missing, "every workspace member is copied (cargo loads them all)", f"not copied: {missing}")
    build = re.search(r"cargo build[^&\n]*-p\s+(\S+)[^&\n]*--bin\s+(\S+)", text)
    if report.check(build is not None, "the build stage runs cargo build -p PACKAGE --bin BINARY"):
        package, binary = build.groups()
        manifests = {tomllib.loads(p.read_text()).get("package", {}).get("name"): p
                     for p in root.glob("*/Cargo.toml")}
        manifest = manifests.get(package)
        bins = {b["name"] for b in tomllib.loads(manifest.read_text()).get("bin", [])} if manifest else set()
        report.check(binary in bins, f"package {package} builds the binary {binary}",
                     f"package {package!r} not found" if not manifest else f"its binaries: {sorted(bins)}")
        report.check(f"target/release/{binary}" in text, f"the runtime stage takes target/release/{binary}")


# ---- fanout configs ------------------------------------------------------------------------

def struct_fields(source: str, name: str) -> set[str]:
    block = re.search(r"pub struct " + name + r" \{(.*?)\n\}", source, re.S)
    return set(re.findall(r"^\s+pub (\w+):", block.group(1), re.M)) if block else set()


def validate_fanout_configs(root: Path, report: Report) -> None:
    report.section("Fanout configuration files")
    source = (root / "fanout/src/config.rs").read_text()
    top, subscription = struct_fields(source, "FanoutConfig"), struct_fields(source, "Subscription")
    configs = {"deploy/compose/fanout.toml": (root / "deploy/compose/fanout.toml").read_text()}
    for doc in load_yaml_documents(root / "deploy/k8s/configmap.yaml"):
        for key, value in doc.get("data", {}).items():
            if key.endswith(".toml"):
                configs[f"deploy/k8s/configmap.yaml {doc['metadata']['name']}/{key}"] = value
    for name, text in configs.items():
        try:
            config = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            report.check(False, f"{name} is TOML", str(error))
            continue
        problems = [f"field {k}" for k in set(config) - top]
        problems += [f"missing {k}" for k in ("data_dir",) if k not in config]
        for entry in config.get("subscriptions", []):
            problems += [f"subscription field {k}" for k in set(entry) - subscription]
            if entry.get("delivery", {}).get("kind") not in ("kafka", "webhook"):
                problems.append(f"delivery kind {entry.get('delivery', {}).get('kind')!r}")
        report.check(not problems, f"{name}: fields fanout accepts", "unknown " + ", ".join(problems))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    root = parser.parse_args().root.resolve()
    report = Report()
    code = Code(root)
    print(f"scimflow sources: {len(code.subcommands)} subcommands, {len(code.env_vars)} SCIMFLOW_* variables, "
          f"{len(code.metrics)} metrics ({', '.join(sorted(code.metrics))})")
    sections = [
        lambda: validate_k8s(root, code, report),
        lambda: validate_compose(root, code, report),
        lambda: validate_prometheus(root, report),
        lambda: validate_grafana(root, code, report),
        lambda: validate_otel(root, report),
        lambda: validate_dockerfile(root, report),
        lambda: validate_fanout_configs(root, report),
    ]
    for section in sections:
        # A file that does not parse, or lacks what a check reads, fails its section with the
        # reason instead of stopping the others.
        try:
            section()
        except Exception as error:  # noqa: BLE001 - reported, counted, and the run fails
            report.check(False, "section aborted", f"{type(error).__name__}: {error}")
    print(f"\ndeploy validation: {report.passed} passed, {report.failed} failed")
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
