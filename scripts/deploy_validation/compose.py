"""deploy/compose/compose.yaml: the compose-spec schema, Docker Compose's own loader, and the
references between services and to scimflow."""

from __future__ import annotations

from pathlib import Path

import yaml

from .code import SIGINT_ROLES, Code
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
            if command[0] in SIGINT_ROLES:
                report.check(
                    service.get("stop_signal") == "SIGINT",
                    f"service {name} ({command[0]}) is stopped with SIGINT",
                    f"stop_signal is {service.get('stop_signal', 'SIGTERM (default)')}",
                )
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
