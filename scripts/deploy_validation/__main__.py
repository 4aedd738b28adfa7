"""Offline validation of the deployment artifacts (Dockerfile, deploy/compose, deploy/k8s).

Run by scripts/validate-deploy.sh (`python -m deploy_validation --root DIR` with scripts/ on
PYTHONPATH), which installs the tools and passes their paths in the environment. Every check
prints `ok` or `FAIL` with the reason; the last line counts them and the exit status is 1 if
anything failed. `--root DIR` validates another checkout (the self-test breaks a copy on
purpose and expects a failure).

What is checked, and against what:
- Kubernetes: `kustomize build deploy/k8s`, then every object against the Kubernetes OpenAPI
  schemas of kubernetes-validate (strict: unknown fields fail); KEDA ScaledObjects against
  KEDA's CRD schema (npm @kubernetes-models/keda) plus the field names KEDA documents; then
  references between objects (ConfigMaps, Secrets, claims, selectors, scale targets, ports).
- Compose: the compose-spec JSON schema (check-jsonschema's vendored copy), then references
  (depends_on, mounted files, healthchecks).
- Both: every scimflow subcommand and SCIMFLOW_* variable they use exists in the Rust
  sources; the projector's autoscaling matches the topic, group and partition count; the
  projector and fanout are stopped with SIGTERM, which cli/src/shutdown.rs handles, and get
  enough grace; their metrics port is the one SCIMFLOW_METRICS_LISTEN binds.
- Prometheus: `promtool check config`; scrape targets are compose services, at the address
  each scimflow service serves /metrics on.
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
import sys
from pathlib import Path

from .code import Code
from .compose import validate_compose
from .dockerfile import validate_dockerfile
from .fanout import validate_fanout_configs
from .kubernetes import validate_k8s
from .observability import validate_grafana, validate_otel, validate_prometheus
from .report import Report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2])
    root = parser.parse_args().root.resolve()
    report = Report()
    code = Code(root)
    print(
        f"scimflow sources: {len(code.subcommands)} subcommands, {len(code.env_vars)} SCIMFLOW_* variables, "
        f"{len(code.metrics)} metrics ({', '.join(sorted(code.metrics))})"
    )
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
    print(f"\nvalidate-deploy: {report.passed} passed, {report.failed} failed")
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
