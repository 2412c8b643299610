"""The Helm chart (deploy/helm/keel), validated offline: lint and render every values profile,
check every object against Kubernetes' schemas (two minor versions) and the operators' CRD
schemas, scan it with checkov, and hold the chart to the code: every KEEL_* variable it sets
is a real setting, what production needs is reachable from values, the network policies
allow exactly Keel's calls, and the policy ConfigMap's symlink swap reaches the reloader.

The tools (helm, kubernetes-validate, checkov, CRD modules) are built once into the cache by
deploy/helm/tools.sh: the first run takes minutes, later runs reuse them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import typing
import zipfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings

from keel_agent_loop.config import Settings as AgentLoopSettings
from keel_approval.config import Settings as ApprovalSettings
from keel_cli.config import CliSettings
from keel_contracts.acl import rules
from keel_contracts.topics import all_specs
from keel_core.grpc.security import server_security
from keel_core.grpc.server import GrpcServer
from keel_core.settings import KafkaSettings, TracingSettings
from keel_core.trust import TrustSettings, generate
from keel_llm_gateway.config import Settings as LlmGatewaySettings
from keel_memory.config import Settings as MemorySettings
from keel_policy.adapters.policy_file import fingerprint, load_policy
from keel_policy.config import Settings as PolicySettings
from keel_tool_gateway.config import Settings as ToolGatewaySettings

pytestmark = [pytest.mark.helm, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
HELM_DIR = ROOT / "deploy/helm"
CHART = HELM_DIR / "keel"
PROFILES = ("dev", "production", "strimzi")
KUBERNETES_VERSIONS = ("1.31.0", "1.33.0")
SERVICES = ("agent-loop", "llm-gateway", "tool-gateway", "policy", "memory", "approval")
# The gRPC calls Keel makes (docs/security.md, "gRPC"): caller -> callees.
CALLS = {
    ("agent-loop", "llm-gateway"),
    ("agent-loop", "tool-gateway"),
    ("agent-loop", "memory"),
    ("tool-gateway", "policy"),
    ("tool-gateway", "approval"),
    ("tool-gateway", "memory"),
}
# Env prefix -> the settings class that reads it. Longest prefix wins.
SETTINGS: dict[str, type[BaseSettings]] = {
    "KEEL_AGENT_LOOP_": AgentLoopSettings,
    "KEEL_LLM_GATEWAY_": LlmGatewaySettings,
    "KEEL_TOOL_GATEWAY_": ToolGatewaySettings,
    "KEEL_POLICY_": PolicySettings,
    "KEEL_MEMORY_": MemorySettings,
    "KEEL_APPROVAL_": ApprovalSettings,
    "KEEL_KAFKA_": KafkaSettings,
    "KEEL_TRUST_": TrustSettings,
    "KEEL_TRACING_": TracingSettings,
    "KEEL_CLI_": CliSettings,
}
# CRD schemas: kind -> (Go module zip in the cache, the CRD file inside it). Pinned in tools.sh.
CRDS = {
    "ServiceMonitor": (
        "github.com/prometheus-operator/prometheus-operator/@v/v0.85.0.zip",
        "github.com/prometheus-operator/prometheus-operator@v0.85.0/example/"
        "prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
    ),
    "PrometheusRule": (
        "github.com/prometheus-operator/prometheus-operator/@v/v0.85.0.zip",
        "github.com/prometheus-operator/prometheus-operator@v0.85.0/example/"
        "prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
    ),
    "Certificate": (
        "github.com/cert-manager/cert-manager/@v/v1.16.2.zip",
        "github.com/cert-manager/cert-manager@v1.16.2/deploy/crds/crd-certificates.yaml",
    ),
    "ScaledObject": (
        "github.com/kedacore/keda/v2/@v/v2.16.1.zip",
        "github.com/kedacore/keda/v2@v2.16.1/config/crd/bases/keda.sh_scaledobjects.yaml",
    ),
}
# Strimzi publishes its CRDs only in its GitHub release bundles and its Helm chart repository,
# neither reachable from a package registry here: its Maven artifacts carry the Java model, not
# the CRD YAML (checked: io.strimzi:api:0.45.0 holds classes only), and it is on neither PyPI,
# npm nor the Go proxy. KafkaTopic and KafkaUser are checked against acl.py and the topic
# catalog instead (test_strimzi_users_carry_exactly_the_acl_table).
CRD_SKIPPED = {"KafkaTopic", "KafkaUser"}

# checkov checks skipped, per profile, each with the reason it does not apply:
CHECKOV_SKIPS_ALL = {
    # "The default namespace should not be used": objects take the release's namespace
    # (`helm install -n keel`); `helm template` leaves metadata.namespace unset.
    "CKV_K8S_21",
}
CHECKOV_SKIPS = {
    "dev": CHECKOV_SKIPS_ALL
    | {
        # "Image should use digest" and "Image Pull Policy should be Always": dev runs the image
        # a developer just built and loaded into kind (`pullPolicy: Never`, tag `dev`);
        # values-production.yaml pins a digest, and there both checks pass.
        "CKV_K8S_43",
        "CKV_K8S_15",
    },
    "production": CHECKOV_SKIPS_ALL
    | {
        # "Prefer using secrets as files over secrets as environment variables": the reviewer
        # tokens, the Milvus token and the provider key are settings pydantic-settings reads
        # from the environment only (the services have no *_FILE variant for them); Kafka
        # passwords and all trust material are files.
        "CKV_K8S_35",
    },
}
CHECKOV_SKIPS["strimzi"] = CHECKOV_SKIPS["production"]


# --- tools and renders ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tools() -> Path:
    """The cache folder with bin/helm, the tools venv and the CRD modules (built if absent)."""
    done = subprocess.run(
        ["bash", str(HELM_DIR / "tools.sh")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip())


def helm(tools: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELM_CACHE_HOME": str(tools / "helm-home")}
    return subprocess.run(
        [str(tools / "bin/helm"), *args], capture_output=True, text=True, check=False, env=env
    )


@cache
def _render(helm_bin: str, profile: str, overrides: tuple[str, ...]) -> str:
    files = ["-f", str(CHART / "values-production.yaml")] if profile == "strimzi" else []
    files += ["-f", str(CHART / f"values-{profile}.yaml")]
    sets = [arg for o in overrides for arg in ("--set", o)]
    done = subprocess.run(
        [helm_bin, "template", "keel", str(CHART), "-n", "keel", *files, *sets],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def render(tools: Path, profile: str, *overrides: str) -> list[dict[str, Any]]:
    text = _render(str(tools / "bin/helm"), profile, overrides)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                yield doc["metadata"]["name"], container


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


# --- generated files --------------------------------------------------------------------------


def test_generated_chart_files_are_up_to_date() -> None:
    done = subprocess.run(
        [str(ROOT / ".venv/bin/python"), str(HELM_DIR / "gen_acls.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout


def test_strimzi_users_carry_exactly_the_acl_table(tools: Path) -> None:
    docs = render(tools, "strimzi")
    users = of_kind(docs, "KafkaUser")
    # Each service connects as its KafkaUser, with the password Secret Strimzi writes for it.
    for name, deployment in of_kind(docs, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        env = env_of(pod["containers"][0])
        assert env["KEEL_KAFKA_USERNAME"]["value"] == f"keel-{name}"
        assert f"keel-{name}" in users
        (kafka,) = [v for v in pod["volumes"] if v["name"] == "kafka"]
        assert kafka["projected"]["sources"][0]["secret"]["name"] == f"keel-{name}"
    assert not of_kind(docs, "Job"), "Strimzi's topic operator makes the topics"
    topics = {
        t["spec"]["topicName"]: t["spec"]["config"] for t in of_kind(docs, "KafkaTopic").values()
    }
    assert topics == {s.name: s.configs() for s in all_specs()}
    granted = {
        (
            name.removeprefix("keel-"),
            operation.upper(),
            acl["resource"]["type"].upper(),
            acl["resource"]["patternType"].upper().replace("PREFIX", "PREFIXED"),
            acl["resource"]["name"],
        )
        for name, user in users.items()
        for acl in user["spec"]["authorization"]["acls"]
        for operation in acl["operations"]
    }
    assert granted == {(r.principal, r.operation, r.resource, r.pattern, r.name) for r in rules()}
    assert {u["spec"]["authentication"]["type"] for u in users.values()} == {"scram-sha-512"}


# --- helm lint, schemas, CRDs, checkov --------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES)
def test_helm_lint_passes(tools: Path, profile: str) -> None:
    files = ["-f", str(CHART / "values-production.yaml")] if profile == "strimzi" else []
    done = helm(
        tools, "lint", "--strict", str(CHART), *files, "-f", str(CHART / f"values-{profile}.yaml")
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    "override",
    [
        "services.toolGateway.sandbox.mode=root",
        # YAML reads an unquoted `off` as false: refused rather than taken as "not off".
        "services.toolGateway.sandbox.mode=false",
        "kafka.securityProtocol=SASL",
        "probes.mode=http",
    ],
)
def test_values_outside_their_choices_are_refused(tools: Path, override: str) -> None:
    done = helm(tools, "template", "keel", str(CHART), "--set", override)
    assert done.returncode != 0
    assert "value must be one of" in done.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("profile", PROFILES)
def test_every_object_is_valid_for_kubernetes(
    tools: Path, profile: str, version: str, tmp_path: Path
) -> None:
    docs = [d for d in render(tools, profile) if d["kind"] not in CRDS.keys() | CRD_SKIPPED]
    assert docs
    target = tmp_path / "rendered.yaml"
    target.write_text(yaml.safe_dump_all(docs))
    done = subprocess.run(
        [str(tools / "helm-tools/bin/kubernetes-validate"), "--strict", "--quiet"]
        + ["-k", version, str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@cache
def crd_schema(cache_dir: str, kind: str) -> dict[str, Any]:
    module_zip, member = CRDS[kind]
    with zipfile.ZipFile(Path(cache_dir) / "gomod/cache/download" / module_zip) as archive:
        crd = yaml.safe_load(archive.read(member))
    assert crd["spec"]["names"]["kind"] == kind
    served = [v for v in crd["spec"]["versions"] if v.get("served")]
    return {v["name"]: _strict(v["schema"]["openAPIV3Schema"]) for v in served}


def _strict(schema: Any) -> Any:
    """The CRD schema as the API server applies it, for jsonschema: unknown fields refused
    (the server prunes them silently, so a misspelt field would vanish unnoticed) unless the
    schema preserves them, and Go's mid-pattern ``(?i)`` moved to the front for Python."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    pattern = out.get("pattern")
    if isinstance(pattern, str) and "(?i)" in pattern:
        out["pattern"] = "(?i)" + pattern.replace("(?i)", "")
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@pytest.mark.parametrize("profile", PROFILES)
def test_operator_objects_match_their_crd_schemas(tools: Path, profile: str) -> None:
    docs = render(tools, profile, "services.agentLoop.keda.enabled=true")
    checked = set()
    for doc in docs:
        if doc["kind"] not in CRDS:
            continue
        group, version = doc["apiVersion"].split("/")
        schemas = crd_schema(str(tools), doc["kind"])
        assert version in schemas, f"{doc['kind']} {doc['apiVersion']} is not served"
        jsonschema.Draft7Validator(schemas[version]).validate(doc)
        checked.add(doc["kind"])
    if profile == "production":
        assert checked == set(CRDS)


@pytest.mark.parametrize("profile", PROFILES)
def test_checkov_finds_nothing(tools: Path, profile: str, tmp_path: Path) -> None:
    target = tmp_path / "rendered.yaml"
    target.write_text(yaml.safe_dump_all(render(tools, profile)))
    done = subprocess.run(
        [str(tools / "helm-tools/bin/checkov"), "-f", str(target), "--framework", "kubernetes"]
        + ["--compact", "--quiet", "--skip-check", ",".join(sorted(CHECKOV_SKIPS[profile]))],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


# --- the chart against the code ---------------------------------------------------------------


def _settings_class(name: str) -> tuple[type[BaseSettings], str]:
    prefix = max((p for p in SETTINGS if name.startswith(p)), key=len, default="")
    assert prefix, f"{name} has no settings class"
    return SETTINGS[prefix], name.removeprefix(prefix).lower()


def _is_field(model: type[BaseModel], path: str, delimiter: str | None) -> bool:
    if path in model.model_fields:
        return True
    if delimiter is None or delimiter not in path:
        return False
    head, rest = path.split(delimiter, 1)
    field = model.model_fields.get(head)
    if field is None:
        return False
    annotation = field.annotation
    candidates = [annotation, *typing.get_args(annotation)]
    return any(
        isinstance(c, type) and issubclass(c, BaseModel) and _is_field(c, rest, delimiter)
        for c in candidates
    )


@pytest.mark.parametrize("profile", PROFILES)
def test_every_keel_variable_the_chart_sets_is_a_real_setting(tools: Path, profile: str) -> None:
    overrides = (
        "services.llmGateway.settings.provider=local",
        "services.toolGateway.settings.sandbox__backend=unshare",
    )
    seen = 0
    for owner, container in containers(render(tools, profile, *overrides)):
        names = [e["name"] for e in container["env"]]
        assert len(names) == len(set(names)), f"{owner} sets a variable twice"
        for name in names:
            if not name.startswith("KEEL_"):
                continue
            cls, path = _settings_class(name)
            delimiter = cls.model_config.get("env_nested_delimiter")
            assert _is_field(cls, path, delimiter), f"{owner}: {name} is not a setting of {cls}"
            seen += 1
    assert seen > 100


def _secret_fields() -> set[str]:
    out = set()
    for prefix, cls in SETTINGS.items():
        for name, field in cls.model_fields.items():
            if field.annotation is SecretStr or name in {"reviewer_tokens", "providers"}:
                out.add(prefix + name.upper())
    return out


def test_production_reaches_every_setting_it_needs_and_inlines_no_secret(tools: Path) -> None:
    docs = render(tools, "production")
    assert not of_kind(docs, "Secret"), "the chart references Secrets, it never makes them"
    deployments = of_kind(docs, "Deployment")
    assert set(deployments) == set(SERVICES)
    services = of_kind(docs, "Service")
    ports = {n: {p["name"]: p["port"] for p in s["spec"]["ports"]} for n, s in services.items()}
    secret_fields = _secret_fields()
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = env_of(container)
        prefix = "KEEL_" + name.upper().replace("-", "_") + "_"
        value = {k: e.get("value") for k, e in env.items()}
        assert value[prefix + "HOST"] == "0.0.0.0"
        assert value["KEEL_TRUST_DIR"] == "/etc/keel/trust"
        assert "KEEL_TRUST_INSECURE_DEV" not in env
        assert value["KEEL_TRUST_TOKEN_KEYS"] == "/etc/keel/token-keys/jwks.json"
        assert value["KEEL_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert value["KEEL_KAFKA_USERNAME"] == name
        assert value["KEEL_KAFKA_PASSWORD_FILE"] == "/etc/keel/kafka/password"
        assert value["KEEL_KAFKA_SSL_CA_FILE"] == "/etc/keel/kafka/ca.pem"
        for key, entry in env.items():
            if key in secret_fields:
                assert "secretKeyRef" in entry.get("valueFrom", {}), f"{name}: {key} inlined"
        # The trust directory the service reads: public keys, its private keys, its TLS files.
        volumes = {v["name"]: v for v in pod["volumes"]}
        sources = volumes["trust"]["projected"]["sources"]
        assert [s["secret"]["name"] for s in sources] == [
            "keel-trust-public",
            f"keel-trust-{name}",
            f"keel-tls-{name}",
        ]
        assert {i["path"] for i in sources[2]["secret"]["items"]} == {
            "tls/ca.pem",
            f"tls/{name}.pem",
            f"tls/{name}.key",
        }
        kafka = [s["secret"]["name"] for s in volumes["kafka"]["projected"]["sources"]]
        assert kafka == [f"keel-kafka-{name}", "keel-kafka-ca"]
        # Every target names a Service of this release on the callee's gRPC port.
        for key, target in value.items():
            if key.endswith("TARGET") and target:
                host, port = target.rsplit(":", 1)
                assert (name, host) in CALLS, f"{name} calls {host}, which Keel does not"
                assert int(port) == ports[host]["grpc"]
    memory = env_of(deployments["memory"]["spec"]["template"]["spec"]["containers"][0])
    assert memory["KEEL_MEMORY_MILVUS_URI"]["value"] == "http://milvus.milvus:19530"
    assert memory["KEEL_MEMORY_MILVUS_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "keel-milvus"
    approval = env_of(deployments["approval"]["spec"]["template"]["spec"]["containers"][0])
    tokens = approval["KEEL_APPROVAL_REVIEWER_TOKENS"]["valueFrom"]["secretKeyRef"]
    assert tokens["name"] == "keel-reviewer-tokens"
    llm = env_of(deployments["llm-gateway"]["spec"]["template"]["spec"]["containers"][0])
    assert "secretKeyRef" in llm["KEEL_LLM_GATEWAY_OPENAI_API_KEY"]["valueFrom"]
    # Each call the agent loop and the tool gateway make has its target set.
    called = {
        (caller, env["value"].rsplit(":", 1)[0])
        for caller in ("agent-loop", "tool-gateway")
        for env in deployments[caller]["spec"]["template"]["spec"]["containers"][0]["env"]
        if env["name"].endswith("TARGET")
    }
    assert called == CALLS


def _allowed_grpc_peers(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(caller, callee) pairs between Keel pods that the NetworkPolicies admit on gRPC, seen
    from both sides: an ingress rule of the callee and an egress rule of the caller."""
    policies = of_kind(docs, "NetworkPolicy")

    def selected(peer: dict[str, Any]) -> str | None:
        labels = peer.get("podSelector", {}).get("matchLabels", {})
        return labels.get("app.kubernetes.io/name") if "namespaceSelector" not in peer else None

    ingress = set()
    egress = set()
    for name in SERVICES:
        spec = policies[name]["spec"]
        for rule in spec.get("ingress", []):
            if {"port": "grpc", "protocol": "TCP"} in rule["ports"]:
                ingress |= {(selected(p), name) for p in rule["from"] if selected(p)}
        for rule in spec.get("egress", []):
            ingress_ports = {p["port"] for p in rule.get("ports", [])}
            for peer in rule.get("to") or []:
                callee = selected(peer)
                if callee in SERVICES:
                    assert ingress_ports == {
                        next(
                            c["containerPort"]
                            for c in of_kind(docs, "Deployment")[callee]["spec"]["template"][
                                "spec"
                            ]["containers"][0]["ports"]
                            if c["name"] == "grpc"
                        )
                    }
                    egress.add((name, callee))
    assert ingress == egress
    return ingress


@pytest.mark.parametrize("profile", PROFILES)
def test_network_policies_deny_by_default_and_allow_exactly_keels_calls(
    tools: Path, profile: str
) -> None:
    docs = render(tools, profile)
    deny = of_kind(docs, "NetworkPolicy")["keel-default-deny"]["spec"]
    assert deny["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny
    assert "egress" not in deny
    assert _allowed_grpc_peers(docs) == CALLS


def test_front_doors_admit_only_the_configured_peers(tools: Path) -> None:
    policies = of_kind(render(tools, "production"), "NetworkPolicy")
    outside = {
        name: [
            (peer, tuple(sorted(p["port"] for p in rule["ports"])))
            for rule in policies[name]["spec"]["ingress"]
            for peer in rule["from"]
            if "namespaceSelector" in peer
            and peer["namespaceSelector"].get("matchLabels", {}).get("kubernetes.io/metadata.name")
            != "monitoring"
        ]
        for name in SERVICES
    }
    assert outside["agent-loop"] == [
        (
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keel-clients"}}},
            ("grpc",),
        )
    ]
    assert outside["approval"] == [
        (
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                }
            },
            ("grpc", "web"),
        )
    ]
    assert all(not outside[n] for n in SERVICES if n not in ("agent-loop", "approval"))


@pytest.mark.parametrize("profile", PROFILES)
def test_pods_are_hardened_and_stop_within_their_grace(tools: Path, profile: str) -> None:
    docs = render(tools, profile)
    for name, deployment in of_kind(docs, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        prefix = "KEEL_" + name.upper().replace("-", "_") + "_"
        drain = float(env[prefix + "SHUTDOWN_GRACE_S"]) + float(env[prefix + "DRAIN_TIMEOUT_S"])
        pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pod["terminationGracePeriodSeconds"] > pause + drain
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert "limits" in container["resources"]
        assert "requests" in container["resources"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/tmp" in mounts
    accounts = of_kind(docs, "ServiceAccount")
    assert all(a["automountServiceAccountToken"] is False for a in accounts.values())
    assert set(of_kind(docs, "PodDisruptionBudget")) == set(SERVICES)


@pytest.mark.parametrize(
    ("mode", "pod", "security"),
    [
        ("off", {}, {"seccompProfile": {"type": "RuntimeDefault"}}),
        (
            "userns",
            {"hostUsers": False},
            {
                "seccompProfile": {"type": "Unconfined"},
                "appArmorProfile": {"type": "Unconfined"},
                "procMount": "Unmasked",
            },
        ),
        (
            "sysadmin",
            {},
            {
                "seccompProfile": {"type": "RuntimeDefault"},
                "appArmorProfile": {"type": "Unconfined"},
                "capabilities": {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
            },
        ),
    ],
)
def test_only_the_tool_gateway_relaxes_its_security_context(
    tools: Path, mode: str, pod: dict[str, Any], security: dict[str, Any]
) -> None:
    deployments = of_kind(
        render(tools, "production", f"services.toolGateway.sandbox.mode={mode}"), "Deployment"
    )
    hardened = render(tools, "production")
    for name, deployment in deployments.items():
        spec = deployment["spec"]["template"]["spec"]
        sc = spec["containers"][0]["securityContext"]
        if name != "tool-gateway":
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert "hostUsers" not in spec
            continue
        assert {k: spec[k] for k in ("hostUsers",) if k in spec} == pod
        expected = {
            **of_kind(hardened, "Deployment")["policy"]["spec"]["template"]["spec"]["containers"][
                0
            ]["securityContext"],
            **security,
        }
        assert sc == expected
        assert sc["runAsNonRoot"] is True
        assert sc["readOnlyRootFilesystem"] is True


def test_probes_are_native_grpc_without_mtls_and_in_pod_mtls_checks_with_it(tools: Path) -> None:
    dev = of_kind(render(tools, "dev"), "Deployment")
    prod = of_kind(render(tools, "production"), "Deployment")
    for name in SERVICES:
        (plain,) = dev[name]["spec"]["template"]["spec"]["containers"]
        port = next(p["containerPort"] for p in plain["ports"] if p["name"] == "grpc")
        assert plain["readinessProbe"]["grpc"] == {"port": port}
        (secured,) = prod[name]["spec"]["template"]["spec"]["containers"]
        script = secured["readinessProbe"]["exec"]["command"][-1]
        assert f"localhost:{port}" in script
        assert f"'{name}'" in script
        compile(script, "probe", "exec")


async def _probe(container: dict[str, Any], kind: str, trust_dir: Path, port: int) -> int:
    """Run the rendered exec probe as the kubelet would, pointed at a local trust dir/port."""
    script = container[kind]["exec"]["command"][-1]
    default_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    script = script.replace("/etc/keel/trust/", f"{trust_dir}/")
    script = script.replace(f"localhost:{default_port}", f"localhost:{port}")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stderr=asyncio.subprocess.DEVNULL
    )
    return await process.wait()


async def test_the_mtls_probe_reads_health_with_the_services_own_certificate(
    tools: Path, tmp_path: Path
) -> None:
    """The kubelet's gRPC probe cannot present a certificate; the exec probe the chart renders
    instead must pass against a real mutual-TLS server, tell NOT_SERVING apart for readiness
    only, and fail against a server of another CA."""
    (container,) = of_kind(render(tools, "production"), "Deployment")["policy"]["spec"]["template"][
        "spec"
    ]["containers"]
    ours, theirs = generate(tmp_path / "ours"), generate(tmp_path / "theirs")
    security = server_security("policy", TrustSettings(dir=ours))
    serving = GrpcServer("127.0.0.1", 0, [], CollectorRegistry(), security)
    # NOT_SERVING from the start (set before start is applied at start: nothing to wait for).
    draining = GrpcServer("127.0.0.1", 0, [], CollectorRegistry(), security)
    draining.set_serving(False)
    await serving.start()
    await draining.start()
    try:
        assert await _probe(container, "readinessProbe", ours, serving.port) == 0
        assert await _probe(container, "livenessProbe", ours, serving.port) == 0
        assert await _probe(container, "readinessProbe", ours, draining.port) == 1
        assert await _probe(container, "livenessProbe", ours, draining.port) == 0
        assert await _probe(container, "livenessProbe", theirs, serving.port) != 0
    finally:
        await serving.stop(0)
        await draining.stop(0)


def test_the_policy_is_a_directory_mount_whose_symlink_swap_the_reloader_sees(
    tools: Path, tmp_path: Path
) -> None:
    docs = render(tools, "production")
    policy = of_kind(docs, "Deployment")["policy"]["spec"]["template"]["spec"]
    (mount,) = [m for m in policy["containers"][0]["volumeMounts"] if m["name"] == "policy"]
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates"
    env = env_of(policy["containers"][0])
    assert env["KEEL_POLICY_POLICY_FILE"]["value"] == mount["mountPath"]
    config = of_kind(docs, "ConfigMap")["keel-policy"]["data"]

    # The kubelet's atomic writer: files live in a timestamped directory, `..data` links to
    # it, and each key is a symlink through `..data`; an update writes a new directory and
    # renames a new `..data` link over the old one.
    def publish(stamp: str, files: dict[str, str]) -> None:
        version = tmp_path / f"..{stamp}"
        version.mkdir()
        for key, text in files.items():
            (version / key).write_text(text)
            if not (tmp_path / key).is_symlink():
                (tmp_path / key).symlink_to(Path("..data") / key)
        (tmp_path / "..data_tmp").symlink_to(version.name)
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")

    publish("2026_12_06_09_00_00.1", config)
    before = fingerprint(tmp_path)
    first = load_policy(tmp_path)
    clock_allowed = "decision: allow\n    description: reading the time is harmless"
    assert clock_allowed in config["default.yaml"]
    changed = {
        "default.yaml": config["default.yaml"].replace(
            clock_allowed, clock_allowed.replace("allow", "deny", 1)
        )
    }
    publish("2026_12_06_09_05_00.2", changed)
    assert fingerprint(tmp_path) != before, "the reloader would not see the swap"
    second = load_policy(tmp_path)
    assert second != first

    def clock(bundle: Any) -> str:
        rule = next(
            r
            for r in bundle.model_dump(mode="json")["sets"][0]["rules"]
            if r["id"] == "allow-clock"
        )
        return str(rule["decision"])

    assert (clock(first), clock(second)) == ("allow", "deny")


# --- the agents server (off by default) -------------------------------------------------------

AGENTS_ON = "agentsServer.enabled=true"


@pytest.mark.parametrize("profile", PROFILES)
def test_the_agents_server_is_off_by_default(tools: Path, profile: str) -> None:
    docs = render(tools, profile)
    assert not [d for d in docs if d["metadata"]["name"] == "agents-server"]


def test_the_agents_server_refuses_a_chart_without_trust_material(tools: Path) -> None:
    """It could not check a caller's token: the chart says so instead of a crash-looping pod."""
    done = helm(
        tools, "template", "keel", str(CHART), "-f", str(CHART / "values-dev.yaml"),
        "--set", AGENTS_ON,
    )  # fmt: skip
    assert done.returncode != 0
    assert "agentsServer needs trust material" in done.stderr


def test_the_agents_server_runs_as_its_own_identity_with_real_settings(tools: Path) -> None:
    from keel_agents_server import AgentsServerSettings

    docs = render(tools, "production", AGENTS_ON)
    pod = of_kind(docs, "Deployment")["agents-server"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "keel_agents_server"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    for name in (n for n in env if n.startswith("KEEL_")):
        cls = AgentsServerSettings if name.startswith("KEEL_AGENTS_") else TrustSettings
        prefix = "KEEL_AGENTS_" if cls is AgentsServerSettings else "KEEL_TRUST_"
        assert name.removeprefix(prefix).lower() in cls.model_fields, name
    assert env["KEEL_AGENTS_AGENT_LOOP_TARGET"] == "agent-loop:50051"
    assert "agents-server.keel.svc" in json.loads(str(env["KEEL_AGENTS_ALLOWED_HOSTS"]))
    # Its own certificate and the public keys; no service's private keys.
    (trust_volume,) = [v for v in pod["volumes"] if v["name"] == "trust"]
    secrets = [s["secret"] for s in trust_volume["projected"]["sources"]]
    assert [s["name"] for s in secrets] == ["keel-trust-public", "keel-tls-agents-server"]
    assert {i["path"] for i in secrets[1]["items"]} == {
        "tls/ca.pem", "tls/agents-server.pem", "tls/agents-server.key",
    }  # fmt: skip
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == "/.well-known/agent-card.json"
    assert probe["httpHeaders"] == [{"name": "Host", "value": "localhost"}]
    assert of_kind(docs, "Service")["agents-server"]["spec"]["ports"][0]["port"] == 8790
    certificate = of_kind(docs, "Certificate")["agents-server"]["spec"]
    assert (certificate["commonName"], certificate["secretName"]) == (
        "agents-server", "keel-tls-agents-server",
    )  # fmt: skip


def test_the_agents_server_may_reach_only_the_agent_loop(tools: Path) -> None:
    policies = of_kind(render(tools, "production", AGENTS_ON), "NetworkPolicy")
    egress = policies["agents-server"]["spec"]["egress"]
    ports = sorted((p["port"], p["protocol"]) for rule in egress for p in rule["ports"])
    assert ports == [(53, "TCP"), (53, "UDP"), (50051, "TCP")]
    callee = egress[1]["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
    assert callee == "agent-loop"
    admitted = [
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for rule in policies["agent-loop"]["spec"]["ingress"]
        for peer in rule["from"]
        if "podSelector" in peer and "namespaceSelector" not in peer
    ]
    assert admitted == ["agents-server"]
    assert policies["agents-server"]["spec"]["ingress"] == []  # no peers configured


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_agents_server_objects_are_valid_and_pass_checkov(
    tools: Path, version: str, tmp_path: Path
) -> None:
    docs = [
        d
        for d in render(tools, "production", AGENTS_ON)
        if d["metadata"]["name"] == "agents-server"
    ]
    assert {d["kind"] for d in docs} == {
        "Deployment", "Service", "ServiceAccount", "PodDisruptionBudget", "Certificate",
        "NetworkPolicy",
    }  # fmt: skip
    certificate = next(d for d in docs if d["kind"] == "Certificate")
    jsonschema.Draft7Validator(crd_schema(str(tools), "Certificate")["v1"]).validate(certificate)
    target = tmp_path / "agents-server.yaml"
    target.write_text(yaml.safe_dump_all([d for d in docs if d["kind"] != "Certificate"]))
    valid = subprocess.run(
        [str(tools / "helm-tools/bin/kubernetes-validate"), "--strict", "--quiet"]
        + ["-k", version, str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert valid.returncode == 0, valid.stdout + valid.stderr
    scan = subprocess.run(
        [str(tools / "helm-tools/bin/checkov"), "-f", str(target), "--framework", "kubernetes"]
        + ["--compact", "--quiet", "--skip-check", ",".join(sorted(CHECKOV_SKIPS["production"]))],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    assert scan.returncode == 0, scan.stdout[-6000:] + scan.stderr[-2000:]
