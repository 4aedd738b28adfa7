"""deploy/k8s: schemas (Kubernetes OpenAPI, KEDA CRD) and the references between objects."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import yaml

from .code import MIN_STOP_GRACE_SECONDS, SHUTDOWN_ROLES, SHUTDOWN_SOURCE, Code
from .report import Report, load_yaml_documents, run, tool

K8S_VERSION = os.environ.get("SCIMFLOW_K8S_VERSION", "1.33.0")
# Secrets that the manifests reference but that are created per cluster (from the template).
SECRET_TEMPLATE = "deploy/k8s/secret.example.yaml"
CORE_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}

# Field names of KEDA's ScaledObject and kafka trigger (keda.sh docs, KEDA 2.x). The CRD
# schema does not reject unknown fields (the API server prunes them silently), so a typo
# such as `maxReplicas` would pass it unnoticed; these lists catch that.
KEDA_SPEC_FIELDS = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
KEDA_TRIGGER_FIELDS = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
KEDA_KAFKA_METADATA = {
    "bootstrapServers",
    "consumerGroup",
    "topic",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "excludePersistentLag",
    "scaleToZeroOnInvalidOffset",
    "limitToPartitionsWithLag",
    "ensureEvenDistributionOfPartitions",
    "partitionLimitation",
    "version",
    "sasl",
    "tls",
    "unsafeSsl",
    "tlsServerName",
}


def validate_k8s(root: Path, code: Code, report: Report) -> None:
    report.section("Kubernetes manifests (deploy/k8s)")
    k8s = root / "deploy/k8s"
    kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text())
    listed = set(kustomization.get("resources", []))
    on_disk = {p.name for p in k8s.glob("*.yaml")} - {"kustomization.yaml", Path(SECRET_TEMPLATE).name}
    report.check(
        on_disk <= listed,
        "kustomization lists every manifest file",
        f"not listed: {sorted(on_disk - listed)}",
    )
    report.check(
        listed <= on_disk, "every kustomization resource exists", f"missing: {sorted(listed - on_disk)}"
    )

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
            report.check(
                False, f"{name} (Kubernetes {K8S_VERSION} schema, strict)", f"{path}: {error.message}"
            )
        except kubernetes_validate.SchemaNotFoundError as error:
            report.check(False, name, error.message)

    if scaled_objects:
        validate_keda(scaled_objects, report)
    check_references(objects, templates, code, report)


def validate_keda(scaled_objects: list[dict], report: Report) -> None:
    result = run(
        ["node", str(Path(__file__).with_name("validate_keda.mjs")), tool("SCIMFLOW_DEPLOY_NODE_MODULES")],
        stdin=json.dumps(scaled_objects),
    )
    for line in result.stdout.splitlines():
        report.check(
            line.startswith("ok"), line[5:] + " (KEDA CRD schema)", "" if line.startswith("ok") else ""
        )
    if result.returncode != 0 and not result.stdout.strip():
        report.check(False, "KEDA schema validation", result.stderr.strip())
    for obj in scaled_objects:
        name = obj["metadata"]["name"]
        spec = obj.get("spec", {})
        unknown = set(spec) - KEDA_SPEC_FIELDS
        report.check(
            not unknown, f"ScaledObject/{name} uses only KEDA's spec fields", f"unknown: {sorted(unknown)}"
        )
        for trigger in spec.get("triggers", []):
            unknown = set(trigger) - KEDA_TRIGGER_FIELDS
            if trigger.get("type") == "kafka":
                unknown |= {f"metadata.{k}" for k in set(trigger.get("metadata", {})) - KEDA_KAFKA_METADATA}
            report.check(
                not unknown,
                f"ScaledObject/{name} trigger {trigger.get('type')} uses only documented fields",
                f"unknown: {sorted(unknown)}",
            )


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
            report.check(
                code.knows_env(key),
                f"ConfigMap variable {key} is read by scimflow",
                "no such variable in the sources",
            )

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
            if (
                "persistentVolumeClaim" in volume
                and volume["persistentVolumeClaim"]["claimName"] not in claims
            ):
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
                if env["name"] == "SCIMFLOW_METRICS_LISTEN":
                    check_metrics_port(name, container, env.get("value", ""), report)
            if container.get("image", "").split(":")[0].endswith("scimflow") and "args" in container:
                subcommand = container["args"][0]
                if subcommand not in code.subcommands:
                    problems.append(f"scimflow subcommand {subcommand!r}")
                if subcommand in SHUTDOWN_ROLES:
                    check_graceful_stop(name, subcommand, spec, container, code, report)
        report.check(not problems, f"{name}: references resolve", "unknown " + ", ".join(problems))

    def template_labels(kind: str, name: str) -> dict | None:
        obj = workloads.get((kind, name))
        return obj["spec"]["template"]["metadata"].get("labels", {}) if obj else None

    pod_label_sets = [
        o["spec"]["template"]["metadata"].get("labels", {})
        for o in workloads.values()
        if o["kind"] != "CronJob"
    ]
    for obj in objects:
        kind, name = obj.get("kind"), obj["metadata"]["name"]
        if kind in ("Service", "PodDisruptionBudget"):
            selector = obj["spec"].get("selector", {})
            selector = selector.get("matchLabels", selector) if kind == "PodDisruptionBudget" else selector
            matches = any(all(labels.get(k) == v for k, v in selector.items()) for labels in pod_label_sets)
            report.check(
                matches, f"{kind}/{name} selects pods of a workload", f"no pod template has {selector}"
            )
        if kind in ("HorizontalPodAutoscaler", "ScaledObject"):
            target = obj["spec"]["scaleTargetRef"]
            target_kind = target.get("kind", "Deployment")
            report.check(
                template_labels(target_kind, target["name"]) is not None,
                f"{kind}/{name} scales an existing {target_kind}",
                f"no {target_kind}/{target['name']}",
            )
            scaled = workloads.get((target_kind, target["name"]), {})
            report.check(
                "replicas" not in scaled.get("spec", {}),
                f"{target_kind}/{target['name']} leaves its replica count to {kind}/{name}",
                "spec.replicas is set: every `kubectl apply` would reset the autoscaler's count",
            )
        if kind == "ScaledObject":
            check_projector_scaling(obj, env_config, report)


def check_metrics_port(name: str, container: dict, listen: str, report: Report) -> None:
    """The probes and the Service reach /metrics, /healthz and /readyz through the container
    port named `metrics`: it must be the port SCIMFLOW_METRICS_LISTEN binds, on all interfaces
    (the default 127.0.0.1 answers nothing from outside the pod)."""
    host, _, port = listen.rpartition(":")
    declared = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    report.check(
        host == "0.0.0.0" and port.isdigit() and declared.get("metrics") == int(port),
        f"{name}: container port `metrics` is where SCIMFLOW_METRICS_LISTEN ({listen}) listens",
        f"container port metrics is {declared.get('metrics')}",
    )


def check_graceful_stop(
    name: str, role: str, spec: dict, container: dict, code: Code, report: Report
) -> None:
    """The kubelet stops a container with SIGTERM, then SIGKILL after
    terminationGracePeriodSeconds (30 by default). The projector and fanout stop gracefully on
    SIGTERM (cli/src/shutdown.rs): no preStop hook has to send them another signal."""
    report.check(
        code.stops_on_sigterm,
        f"{name} ({role}) stops on the kubelet's SIGTERM: {SHUTDOWN_SOURCE} handles it",
        f"{SHUTDOWN_SOURCE} does not listen for SignalKind::terminate()",
    )
    hook = container.get("lifecycle", {}).get("preStop", {})
    command = " ".join(hook.get("exec", {}).get("command", []))
    report.check(
        not re.search(r"\bkill\b", command),
        f"{name} ({role}) has no preStop hook that signals the process itself",
        f"preStop runs {command!r}: the kubelet's SIGTERM already stops it gracefully",
    )
    grace = spec.get("terminationGracePeriodSeconds", 30)
    report.check(
        grace >= MIN_STOP_GRACE_SECONDS[role],
        f"{name} ({role}) has terminationGracePeriodSeconds >= {MIN_STOP_GRACE_SECONDS[role]}",
        f"terminationGracePeriodSeconds is {grace}",
    )


def check_projector_scaling(obj: dict, env: dict, report: Report) -> None:
    """The kafka trigger must watch the projector's group on the commands topic, and never ask
    for more members than the topic has partitions (the extra ones would be idle)."""
    partitions = int(env.get("SCIMFLOW_KAFKA_COMMAND_PARTITIONS", "12"))
    prefix = env.get("SCIMFLOW_KAFKA_TOPIC_PREFIX", "scimflow.")
    group = env.get("SCIMFLOW_PROJECTOR_GROUP_ID", "scimflow-projector")
    name = obj["metadata"]["name"]
    spec = obj["spec"]
    report.check(
        spec.get("maxReplicaCount", 100) <= partitions,
        f"ScaledObject/{name} maxReplicaCount <= {partitions} command partitions",
        f"maxReplicaCount {spec.get('maxReplicaCount')}",
    )
    for trigger in spec.get("triggers", []):
        if trigger.get("type") != "kafka":
            continue
        meta = trigger.get("metadata", {})
        expected = {
            "topic": prefix + "commands",
            "consumerGroup": group,
            "bootstrapServers": env.get("SCIMFLOW_KAFKA_BROKERS"),
        }
        wrong = {k: meta.get(k) for k, v in expected.items() if meta.get(k) != v}
        report.check(
            not wrong,
            f"ScaledObject/{name} watches {group} on {prefix}commands at the configured brokers",
            f"{wrong}, expected {expected}",
        )
        report.check(
            meta.get("allowIdleConsumers", "false") == "false",
            f"ScaledObject/{name} does not scale past the partition count",
            "allowIdleConsumers is on",
        )
