"""The deployment definitions against what the components really accept (command, environment variable
names and values, health check port), and the ECS ones registered with moto's ECS API (a loopback
moto_server), with the IAM roles and policies they name."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, Sequence

import boto3
import pytest
import requests
import yaml

from shared import config
from tests.support import REPO, Process, free_port, wait_until

ECS = REPO / "deploy" / "ecs"
COMPONENTS: dict[str, tuple[Sequence[config.Option], Callable[..., Any]]] = {
    "watcher": (config.WATCHER_OPTIONS, config.load_watcher),
    "registrar": (config.REGISTRAR_OPTIONS, config.load_registrar),
    "heartbeater": (config.HEARTBEATER_OPTIONS, config.load_heartbeater),
}
# Read by boto3 through shared/aws.py rather than an option of the component.
AWS_SDK_VARIABLES = {"registrar": {"AWS_REGION"}, "heartbeater": {"AWS_REGION"}}
# What the secrets named in the task definitions hold, as an operator would store them.
SECRET_VALUES = {"REDIS_URL": "redis://:password@redis.internal:6379/0",
                 "EUREKA_URL": "https://user:password@eureka.internal/eureka"}
HEALTH_PORT = re.compile(r"http://127\.0\.0\.1:(\d+)/healthz")


def _load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _load_module(ECS / "render.py")
EXAMPLE_VALUES = render.read_values(ECS / "values.env.example")


def _ecs_container(component: str) -> dict[str, Any]:
    definition = json.loads(render.render((ECS / f"{component}.task.json").read_text(), EXAMPLE_VALUES))
    [container] = definition["containerDefinitions"]
    environment = {entry["name"]: entry["value"] for entry in container.get("environment", [])}
    environment |= {entry["name"]: SECRET_VALUES[entry["name"]] for entry in container.get("secrets", [])}
    return {"command": container["command"], "environment": environment,
            "health": " ".join(container["healthCheck"]["command"])}


def _compose_service(component: str) -> dict[str, Any]:
    service = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][component]
    # Variables as docker-compose fills them when nothing is set: ${NAME:-default} gives the default.
    environment = {name: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))
                   for name, value in service["environment"].items()}
    return {"command": service["command"], "environment": environment,
            "health": " ".join(service["healthcheck"]["test"])}


DEFINITIONS = {"ecs": _ecs_container, "compose": _compose_service}
CASES = [pytest.param(kind, component, id=f"{kind}-{component}") for kind in DEFINITIONS for component in COMPONENTS]


@pytest.mark.parametrize(("kind", "component"), CASES)
def test_definition_runs_the_component_with_options_it_accepts(kind: str, component: str) -> None:
    definition = DEFINITIONS[kind](component)
    options, load = COMPONENTS[component]
    command = definition["command"]
    assert command[:3] == ["python", "-m", component]
    assert importlib.util.find_spec(f"{component}.__main__") is not None
    accepted = {option.env for option in options} | AWS_SDK_VARIABLES.get(component, set())
    unknown = set(definition["environment"]) - accepted
    assert not unknown, f"{kind} {component}: not an environment variable of the {component}: {sorted(unknown)}"
    # The values are valid too: the component's own configuration accepts them (else: exit 2).
    load(command[3:], definition["environment"])


@pytest.mark.parametrize(("kind", "component"), CASES)
def test_health_check_asks_the_components_metrics_port(kind: str, component: str) -> None:
    [option] = [option for option in COMPONENTS[component][0] if option.env == "METRICS_PORT"]
    definition = DEFINITIONS[kind](component)
    [port] = HEALTH_PORT.findall(definition["health"])
    assert int(port) == int(definition["environment"].get("METRICS_PORT") or option.default)


def test_every_placeholder_has_an_example_value() -> None:
    used = set().union(*(render.placeholders(path.read_text()) for path in render.templates()))
    assert used == set(EXAMPLE_VALUES)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto_server on loopback: AWS's APIs (ECS, IAM, EC2, Secrets Manager, CloudWatch Logs) emulated."""
    port = free_port()
    server = Process("moto", [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                     tmp_path_factory.mktemp("moto")).start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(f"{url}/moto-api/", timeout=2).ok, 30, "moto_server to answer")
        yield url
    finally:
        # It waits for the threads of kept-alive boto3 connections before exiting: no need to.
        server.stop(timeout=3)


def _client(moto: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=moto, region_name=EXAMPLE_VALUES["AWS_REGION"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _aws_resources(moto: str) -> dict[str, str]:
    """The things the definitions refer to, made in moto the way the README says; their real ids and ARNs."""
    values = dict(EXAMPLE_VALUES)
    ec2 = _client(moto, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    values["WORKER_SUBNET_A"], values["WORKER_SUBNET_B"] = (
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{n}.0/24")["Subnet"]["SubnetId"] for n in (1, 2))
    values["WORKER_SECURITY_GROUP"] = ec2.create_security_group(
        GroupName="eureka-registrator-workers", Description="registrar and heartbeater tasks", VpcId=vpc)["GroupId"]
    secrets = _client(moto, "secretsmanager")
    for name in SECRET_VALUES:
        values[f"{name}_SECRET_ARN"] = secrets.create_secret(Name=f"eureka-registrator/{name.lower()}",
                                                             SecretString=SECRET_VALUES[name])["ARN"]
    _client(moto, "logs").create_log_group(logGroupName=values["LOG_GROUP"])

    iam = _client(moto, "iam")
    trust = render.render((ECS / "iam" / "ecs-tasks-trust-policy.json").read_text(), values)
    for role, policy, value in (
            ("eureka-registrator-execution", "execution-role-policy.json", "EXECUTION_ROLE_ARN"),
            ("eureka-registrator-registrar", "registrar-task-policy.json", "REGISTRAR_TASK_ROLE_ARN"),
            ("eureka-registrator-heartbeater", "heartbeater-task-policy.json", "HEARTBEATER_TASK_ROLE_ARN")):
        arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        iam.put_role_policy(RoleName=role, PolicyName=policy.removesuffix(".json"),
                            PolicyDocument=render.render((ECS / "iam" / policy).read_text(), values))
        values[value] = arn
    return values


def test_ecs_definitions_register_with_the_ecs_api(moto: str, tmp_path: Path) -> None:
    values = _aws_resources(moto)
    values_file = tmp_path / "values.env"
    values_file.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    rendered = tmp_path / "ecs"
    result = subprocess.run([sys.executable, str(ECS / "render.py"), str(values_file), str(rendered)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr

    ecs = _client(moto, "ecs")
    ecs.create_cluster(clusterName=values["CLUSTER"])
    for component in COMPONENTS:
        task = json.loads((rendered / f"{component}.task.json").read_text())
        registered = ecs.register_task_definition(**task)["taskDefinition"]
        assert registered["status"] == "ACTIVE" and registered["revision"] == 1
        ecs.create_service(**json.loads((rendered / f"{component}.service.json").read_text()))

    services = {service["serviceName"].rpartition("-")[2]: service for service in ecs.describe_services(
        cluster=values["CLUSTER"], services=[f"eureka-registrator-{c}" for c in COMPONENTS])["services"]}
    assert services["watcher"]["schedulingStrategy"] == "DAEMON"
    for pool in ("registrar", "heartbeater"):
        assert services[pool]["schedulingStrategy"] == "REPLICA"
        assert services[pool]["desiredCount"] == 2
        network = services[pool]["networkConfiguration"]["awsvpcConfiguration"]
        assert network["subnets"] == [values["WORKER_SUBNET_A"], values["WORKER_SUBNET_B"]]
    for component, service in services.items():
        assert service["taskDefinition"].endswith(f":task-definition/eureka-registrator-{component}:1")

    watcher = ecs.describe_task_definition(taskDefinition="eureka-registrator-watcher")["taskDefinition"]
    assert watcher["networkMode"] == "host"
    [container] = watcher["containerDefinitions"]
    assert container["user"] == "0"
    assert container["mountPoints"] == [{"sourceVolume": "docker-socket", "containerPath": "/var/run/docker.sock",
                                         "readOnly": True}]
    assert watcher["volumes"][0]["host"] == {"sourcePath": "/var/run/docker.sock"}
    for component in COMPONENTS:
        [container] = ecs.describe_task_definition(
            taskDefinition=f"eureka-registrator-{component}")["taskDefinition"]["containerDefinitions"]
        assert container["image"] == values["IMAGE"]
        assert container["readonlyRootFilesystem"] is True
        assert container["logConfiguration"]["options"]["awslogs-stream-prefix"] == component
        assert {secret["valueFrom"] for secret in container["secrets"]} <= {
            values["REDIS_URL_SECRET_ARN"], values["EUREKA_URL_SECRET_ARN"]}
        # No credential in a task definition: every value is plain configuration.
        assert not any("password" in entry["value"] for entry in container.get("environment", []))

    registrar_task = ecs.describe_task_definition(taskDefinition="eureka-registrator-registrar")["taskDefinition"]
    assert registrar_task["taskRoleArn"] == values["REGISTRAR_TASK_ROLE_ARN"]
    policy = _client(moto, "iam").get_role_policy(RoleName="eureka-registrator-registrar",
                                                  PolicyName="registrar-task-policy")["PolicyDocument"]
    actions = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert {"ecs:DescribeTasks", "ecs:DescribeServices", "elasticloadbalancing:DescribeTargetGroups",
            "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeLoadBalancers",
            "elasticloadbalancing:DescribeTargetHealth"} <= actions
    heartbeater_task = ecs.describe_task_definition(taskDefinition="eureka-registrator-heartbeater")["taskDefinition"]
    assert heartbeater_task["taskRoleArn"] == values["HEARTBEATER_TASK_ROLE_ARN"]
    policy = _client(moto, "iam").get_role_policy(RoleName="eureka-registrator-heartbeater",
                                                  PolicyName="heartbeater-task-policy")["PolicyDocument"]
    assert {action for statement in policy["Statement"] for action in statement["Action"]} == {
        "elasticloadbalancing:DescribeTargetHealth", "elasticloadbalancing:DescribeLoadBalancers"}


def test_render_names_every_missing_value(tmp_path: Path) -> None:
    values = tmp_path / "values.env"
    values.write_text("AWS_REGION=eu-west-1\nIMAGE=registry.example/eureka-registrator:1\n")
    result = subprocess.run([sys.executable, str(ECS / "render.py"), str(values), str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.startswith("no value for ACCOUNT_ID, CLUSTER, EUREKA_URL_SECRET_ARN, ")
    assert not (tmp_path / "out").exists()
