"""deploy/compose/compose.yaml: the compose-spec schema, Docker Compose's own loader, and the
references between services and to scimflow."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from .code import MIN_STOP_GRACE_SECONDS, SHUTDOWN_ROLES, SHUTDOWN_SOURCE, Code
from .report import Report, run, tool


def validate_compose(root: Path, code: Code, report: Report) -> None:
    report.section("Compose (deploy/compose)")
    compose_file = root / "deploy/compose/compose.yaml"
    result = run(
        [tool("SCIMFLOW_CHECK_JSONSCHEMA"), "--builtin-schema", "vendor.compose-spec", str(compose_file)]
    )
    report.check(
        result.returncode == 0,
        "compose.yaml against the compose-spec JSON schema",
        (result.stdout + result.stderr).strip(),
    )
    # Docker Compose itself (the binary, no daemon needed): interpolation, merge keys, and the
    # model checks the schema cannot express (undefined services, volumes, networks).
    result = run(
        [
            tool("SCIMFLOW_DOCKER_COMPOSE"),
            "--project-directory",
            str(compose_file.parent),
            "-f",
            str(compose_file),
            "config",
            "--quiet",
        ]
    )
    report.check(
        result.returncode == 0,
        "docker compose config accepts compose.yaml",
        (result.stdout + result.stderr).strip(),
    )
    compose = yaml.safe_load(compose_file.read_text())
    services = compose.get("services", {})
    volumes = set(compose.get("volumes", {}) or {})
    for name, service in services.items():
        problems = []
        for dependency in service.get("depends_on") or {}:
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
            if command[0] in SHUTDOWN_ROLES:
                check_graceful_stop(name, command[0], service, code, report)
        report.check(not problems, f"service {name}: references resolve", "unknown " + ", ".join(problems))
    build = next((s["build"] for s in services.values() if "build" in s), None)
    if build:
        context = (compose_file.parent / build["context"]).resolve()
        report.check(
            (context / build.get("dockerfile", "Dockerfile")).is_file(),
            "the build context holds the Dockerfile",
            str(context),
        )
    api = services.get("ingest-api", {})
    health = " ".join(api.get("healthcheck", {}).get("test", []))
    report.check(
        "/readyz" in health or "/healthz" in health, "ingest-api has a /readyz or /healthz healthcheck"
    )


def check_graceful_stop(name: str, role: str, service: dict, code: Code, report: Report) -> None:
    """Compose stops a container with SIGTERM, then SIGKILL after stop_grace_period (10 s by
    default). The projector and fanout stop gracefully on SIGTERM (cli/src/shutdown.rs), so
    the default signal is right; they need the grace to finish the work in flight."""
    signal = str(service.get("stop_signal", "SIGTERM")).upper()
    report.check(
        signal in ("SIGTERM", "TERM", "15") and code.stops_on_sigterm,
        f"service {name} ({role}) is stopped with SIGTERM, which {SHUTDOWN_SOURCE} handles",
        f"stop_signal is {signal}"
        if code.stops_on_sigterm
        else f"{SHUTDOWN_SOURCE} does not listen for SignalKind::terminate()",
    )
    grace = duration_seconds(service.get("stop_grace_period", "10s"))
    report.check(
        grace is not None and grace >= MIN_STOP_GRACE_SECONDS[role],
        f"service {name} ({role}) has a stop_grace_period of at least {MIN_STOP_GRACE_SECONDS[role]}s",
        f"stop_grace_period is {service.get('stop_grace_period', '10s (default)')}",
    )


def duration_seconds(value: object) -> float | None:
    """A compose duration (`90s`, `1m30s`, `500ms`) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(value))
    if not parts or "".join(n + u for n, u in parts) != str(value):
        return None
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}
    return sum(float(number) * scale[unit] for number, unit in parts)
