"""AWS on loopback for the tests: moto in server mode, a stand-in in front of it, and a builder of resources.

`MotoServer` is a real `moto_server` process. `AwsStandIn` is what the code under test talks to: it
passes every request on to moto and counts it by operation (the count of real calls), and answers from
its own script where moto cannot: throttling, 5xx, errors that quote the signed request, and target
health states other than moto's "healthy" / "unused". `AwsWorld` makes resources in moto directly, so
that setting up a test is not counted.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping
from urllib.parse import parse_qs

import boto3
import requests

from shared.alb import AlbEndpoint, AlbIntent, AlbLookup, ExplicitAlb
from tests.stub_http import Answer, LoopbackServer
from tests.support import Process, free_port, wait_until

REGION = "us-east-1"
ECS_TARGET_PREFIX = "AmazonEC2ContainerServiceV20141113."
ELB_NAMESPACE = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIATESTKEYID0000000", "AWS_SECRET_ACCESS_KEY": "test/secret+access+key",
               "AWS_SESSION_TOKEN": "test-session-token"}


class MotoServer:
    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        moto_server = str(Path(sys.executable).parent / "moto_server")
        self.process = Process("moto", [moto_server, "-H", "127.0.0.1", "-p", str(self.port)], log_dir)

    def start(self) -> MotoServer:
        self.process.start()
        wait_until(lambda: requests.get(f"{self.url}/moto-api/", timeout=2).ok, 30, "moto_server to answer")
        return self

    def reset(self) -> None:
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        self.process.stop()


def elb_error(code: str, message: str, status: int = 400) -> Answer:
    """An Elastic Load Balancing (query protocol) error answer."""
    body = (f'<ErrorResponse xmlns="{ELB_NAMESPACE}"><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{message}</Message></Error><RequestId>stand-in</RequestId></ErrorResponse>")
    return Answer(status, body, content_type="text/xml")


def ecs_error(code: str, message: str, status: int = 400) -> Answer:
    """An ECS (JSON protocol) error answer."""
    return Answer(status, json.dumps({"__type": code, "message": message}), content_type="application/x-amz-json-1.1")


def server_error() -> Answer:
    return Answer(500, "", content_type="text/plain")


class AwsStandIn(LoopbackServer):
    """Passes requests on to moto, counting them by operation; answers `script`ed ones itself."""

    def __init__(self, moto_url: str) -> None:
        super().__init__()
        self.url = self.base_url
        self.moto_url = moto_url
        self.calls: Counter[str] = Counter()
        # operation -> answers to give, in order, instead of moto's
        self.script: dict[str, list[Answer]] = {}
        # target group ARN -> [(instance id, port, state)], answered to DescribeTargetHealth instead of moto
        self.target_health: dict[str, list[tuple[str, int, str]]] = {}
        # operation -> seconds moto's answer is held back
        self.delays: dict[str, float] = {}
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._session.trust_env = False

    def answer_request(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Answer:
        target = headers.get("X-Amz-Target", "")
        form = {} if target else {key: values[0] for key, values in parse_qs(body.decode()).items()}
        operation = target.removeprefix(ECS_TARGET_PREFIX) if target else form.get("Action", "?")
        with self._lock:
            self.calls[operation] += 1
            scripted = self.script.get(operation)
            if scripted:
                return scripted.pop(0)
            health = self.target_health.get(form.get("TargetGroupArn", ""))
        if operation == "DescribeTargetHealth" and health is not None:
            return _target_health_answer(health)
        forwarded = {key: value for key, value in headers.items()
                     if key.lower() not in ("host", "content-length", "connection", "accept-encoding")}
        response = self._session.post(self.moto_url + path, data=body, headers=forwarded, timeout=30)
        return Answer(response.status_code, response.text, delay=self.delays.get(operation, 0.0),
                      content_type=response.headers.get("Content-Type", ""))

    def total(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def __enter__(self) -> AwsStandIn:
        super().__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self._session.close()


def _target_health_answer(targets: list[tuple[str, int, str]]) -> Answer:
    members = "".join(f"<member><Target><Id>{instance}</Id><Port>{port}</Port></Target>"
                      f"<HealthCheckPort>traffic-port</HealthCheckPort><TargetHealth><State>{state}</State>"
                      f"</TargetHealth></member>" for instance, port, state in targets)
    body = (f'<DescribeTargetHealthResponse xmlns="{ELB_NAMESPACE}"><DescribeTargetHealthResult>'
            f"<TargetHealthDescriptions>{members}</TargetHealthDescriptions></DescribeTargetHealthResult>"
            "<ResponseMetadata><RequestId>stand-in</RequestId></ResponseMetadata></DescribeTargetHealthResponse>")
    return Answer(200, body, content_type="text/xml")


class AwsWorld:
    """Makes VPCs, instances, load balancers and ECS resources in moto, straight (not through the stand-in)."""

    def __init__(self, moto_url: str) -> None:
        def client(service: str) -> Any:
            return boto3.session.Session(aws_access_key_id="setup", aws_secret_access_key="setup",
                                         region_name=REGION).client(service, endpoint_url=moto_url)

        self.ec2, self.ecs, self.elbv2 = client("ec2"), client("ecs"), client("elbv2")
        self.vpc = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnets = [self.ec2.create_subnet(VpcId=self.vpc, CidrBlock=f"10.0.{n}.0/24",
                                               AvailabilityZone=f"{REGION}{zone}")["Subnet"]["SubnetId"]
                        for n, zone in ((1, "a"), (2, "b"))]

    # --- EC2 and Elastic Load Balancing ---------------------------------------------------------

    def instance(self) -> str:
        return self.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
                                      SubnetId=self.subnets[0])["Instances"][0]["InstanceId"]

    def stop(self, instance_id: str) -> None:
        self.ec2.stop_instances(InstanceIds=[instance_id])

    def load_balancer(self, name: str) -> tuple[str, str]:
        """A new ALB: (ARN, DNS name)."""
        found = self.elbv2.create_load_balancer(Name=name, Subnets=self.subnets)["LoadBalancers"][0]
        return found["LoadBalancerArn"], found["DNSName"]

    def delete_load_balancer(self, arn: str) -> None:
        self.elbv2.delete_load_balancer(LoadBalancerArn=arn)

    def target_group(self, name: str, target_type: str = "instance") -> str:
        return self.elbv2.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=self.vpc,
                                              TargetType=target_type)["TargetGroups"][0]["TargetGroupArn"]

    def listener(self, load_balancer_arn: str, port: int, *weighted: tuple[str, int]) -> str:
        """A listener whose default action forwards to one target group, or to several by weight."""
        if len(weighted) == 1:
            action = {"Type": "forward", "TargetGroupArn": weighted[0][0]}
        else:
            action = {"Type": "forward", "ForwardConfig": {"TargetGroups": [
                {"TargetGroupArn": arn, "Weight": weight} for arn, weight in weighted]}}
        return self.elbv2.create_listener(LoadBalancerArn=load_balancer_arn, Protocol="HTTP", Port=port,
                                          DefaultActions=[action])["Listeners"][0]["ListenerArn"]

    def rule(self, listener_arn: str, path: str, target_group_arn: str, priority: int = 10) -> None:
        self.elbv2.create_rule(ListenerArn=listener_arn, Priority=priority,
                               Conditions=[{"Field": "path-pattern", "Values": [path]}],
                               Actions=[{"Type": "forward", "TargetGroupArn": target_group_arn}])

    def register(self, target_group_arn: str, instance_id: str, port: int) -> None:
        self.elbv2.register_targets(TargetGroupArn=target_group_arn, Targets=[{"Id": instance_id, "Port": port}])

    # --- ECS ------------------------------------------------------------------------------------

    def cluster(self, name: str) -> str:
        return self.ecs.create_cluster(clusterName=name)["cluster"]["clusterArn"]

    def task_definition(self, family: str, *ports: tuple[str, int]) -> str:
        """A task definition with a container per (name, container port), each on a dynamic host port."""
        containers = [{"name": name, "image": "web", "memory": 64,
                       "portMappings": [{"containerPort": port, "hostPort": 0}]} for name, port in ports]
        return self.ecs.register_task_definition(family=family, containerDefinitions=containers)[
            "taskDefinition"]["taskDefinitionArn"]

    def service(self, cluster: str, name: str, task_definition: str, *load_balancers: tuple[str, str, int]) -> None:
        """An ECS service with load balancer entries (target group ARN, container name, container port)."""
        self.ecs.create_service(cluster=cluster, serviceName=name, taskDefinition=task_definition, desiredCount=0,
                                loadBalancers=[{"targetGroupArn": arn, "containerName": container,
                                                "containerPort": port} for arn, container, port in load_balancers])

    def run_tasks(self, cluster: str, task_definition: str, group: str, count: int = 1) -> list[str]:
        """Tasks as ECS starts them for a service when `group` is `service:<name>`; their ARNs. (Launched as
        Fargate tasks, which moto places without looking at container instances' ports and memory.)"""
        tasks = []
        while len(tasks) < count:
            tasks += self.ecs.run_task(cluster=cluster, taskDefinition=task_definition, group=group,
                                       count=min(10, count - len(tasks)), launchType="FARGATE")["tasks"]
        return [task["taskArn"] for task in tasks]


def web_service(world: AwsWorld) -> SimpleNamespace:
    """An ALB `web` whose listener on 8080 forwards to target group `web`, the target group of ECS service
    `web` (container `app`, port 80) in cluster `prod`, which runs one task; and an instance (not yet a
    target)."""
    instance = world.instance()
    load_balancer, dns_name = world.load_balancer("web")
    target_group = world.target_group("web")
    world.listener(load_balancer, 8080, (target_group, 1))
    cluster = world.cluster("prod")
    task_definition = world.task_definition("web", ("app", 80))
    world.service("prod", "web", task_definition, (target_group, "app", 80))
    [task] = world.run_tasks("prod", task_definition, "service:web")
    return SimpleNamespace(instance=instance, load_balancer=load_balancer, dns_name=dns_name,
                           target_group=target_group, cluster=cluster, task_definition=task_definition, task=task,
                           endpoint=AlbEndpoint(dns_name=dns_name, port=8080, target_group_arn=target_group,
                                                load_balancer_arn=load_balancer))


def ecs_labels(cluster: str, task_arn: str, container: str = "app") -> dict[str, str]:
    """The labels the ECS agent puts on a container it starts for task `task_arn`."""
    return {"com.amazonaws.ecs.cluster": cluster, "com.amazonaws.ecs.task-arn": task_arn,
            "com.amazonaws.ecs.container-name": container}


def lookup(**fields: Any) -> AlbIntent:
    """The intent of a service on container port 80, host port 32768, looked up by `fields`."""
    return AlbIntent(AlbLookup(**{"container_port": 80, "host_port": 32768, **fields}), only_registration=True)


def explicit(dns_name: str, port: int, target_group_arn: str) -> AlbIntent:
    return AlbIntent(ExplicitAlb(dns_name, port, target_group_arn), only_registration=True)
