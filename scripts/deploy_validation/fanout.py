"""Fanout subscription files: only the fields fanout/src/config.rs accepts."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from .report import Report, load_yaml_documents


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
