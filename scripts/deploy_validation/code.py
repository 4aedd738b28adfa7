"""What the scimflow Rust sources define: subcommands, environment variables, metrics. The
deployment artifacts may only use what is found here."""

from __future__ import annotations

import re
from pathlib import Path

# Subcommands that stop gracefully on SIGINT only (`tokio::signal::ctrl_c` in cli/src/main.rs
# and App::run_until_stopped); as PID 1 of a container they ignore SIGTERM. The API roles
# stop on SIGTERM (actix), which treats SIGINT as a forced stop.
SIGINT_ROLES = {"projector", "fanout"}


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
                tail = text[match.end() : match.end() + 600]
                labels_match = re.search(r"&\[([^\]]*)\]", tail)
                labels = set(re.findall(r'"([a-z_]+)"', labels_match.group(1))) if labels_match else set()
                metrics[match.group(2)] = (kind, labels)
        return metrics

    def knows_env(self, name: str) -> bool:
        # SCIMFLOW_KAFKA_CLIENT_<KEY> is a passthrough of any librdkafka setting.
        return name in self.env_vars or name.startswith("SCIMFLOW_KAFKA_CLIENT_")
