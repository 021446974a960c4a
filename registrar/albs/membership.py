"""A container's part in the ALBs in front of its services: which ALBs it is a member of (SPEC section 5).

Part of the container's reconcile. Each service registered through an ALB (`shared.alb.alb_intent`) has its
ALB looked up (`lookups`: from the fleet's cache at once, else on a lookup thread while the job goes on); the
container then is a member of every ALB one of its services sits behind and of no other (`record.AlbRecords`),
and only while its state is running and vouched for. When a lookup has no answer now, the container keeps the
memberships it has (it cannot tell which it still wants) and its state stays pending: it is reconciled again
as soon as the lookup is done, or when the lookup's answer says to ask again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from registrar.albs.lookups import Answer, Lookups
from registrar.albs.record import AlbMember, AlbRecords
from registrar.albs.resolver import Unknown
from shared import defaults, keys
from shared.alb import AlbEndpoint, AlbIntent, alb_registration
from shared.models import ContainerState, InstanceStatus, ServiceRecord
from shared.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlbService:
    """A service registered through an ALB; `container_key` is its own Eureka instance when it is registered
    too (`eureka_elbv2_only_registration=false`), else None."""

    record: ServiceRecord
    intent: AlbIntent
    problems: tuple[str, ...]
    container_key: str | None


@dataclass(frozen=True)
class AlbPlan:
    """What a container's state asks of ALBs now: the ALBs it is a member of (instance key -> its part), the
    ALB endpoint of each of its own instances registered too, and those of its own instances whose ALB is not
    known now. Unless `settled`, some lookup had no answer: memberships are only added."""

    members: dict[str, AlbMember] = field(default_factory=dict)
    endpoints: dict[str, AlbEndpoint] = field(default_factory=dict)
    waiting: frozenset[str] = frozenset()
    settled: bool = True


class AlbMemberships:
    def __init__(self, store: Store, records: AlbRecords, lookups: Lookups, reconcile_later: Callable[[str], None],
                 *, min_renewal: int) -> None:
        """`reconcile_later(source)` has a source reconciled again (its lookups are done)."""
        self.store = store
        self.records = records
        self.lookups = lookups
        self.reconcile_later = reconcile_later
        self.min_renewal = min_renewal

    def plan(self, source: str, state: ContainerState, services: list[AlbService], describe: str) -> AlbPlan:
        """Look up the ALBs `state`'s services want (`describe` names the container in messages)."""
        asked = [service for service in services if state.vouched or service.container_key is not None]
        if not asked:
            return AlbPlan()
        host_instance_id = state.ec2.instance_id if state.ec2 is not None else None
        questions = [(service.intent, host_instance_id) for service in asked]
        answers = self.lookups.cached(questions)
        if answers is None:
            # Reconciled again once AWS answered; this only in case that never comes (the process ends).
            self.store.retry_pending(source, defaults.SWEEP_FIRST_RETRY_SECONDS)
            self.lookups.ask(questions, lambda answers: self._looked_up(source, describe, asked, answers))
            return AlbPlan(waiting=_own_keys(asked), settled=False)
        return self._members(source, state, asked, answers, describe)

    def _looked_up(self, source: str, describe: str, asked: list[AlbService], answers: list[Answer]) -> None:
        """On a lookup thread: reconcile `source` again now that every ALB is found, or when AWS says to."""
        unknown = [(service, answer) for service, answer in zip(asked, answers) if isinstance(answer, Unknown)]
        if not unknown:
            self.reconcile_later(source)
            return
        for service, answer in unknown:
            _not_yet(describe, service, answer)
        self.store.retry_pending(source, min(answer.retry_after for _, answer in unknown))

    def _members(self, source: str, state: ContainerState, asked: list[AlbService], answers: list[Answer],
                 describe: str) -> AlbPlan:
        members: dict[str, AlbMember] = {}
        endpoints: dict[str, AlbEndpoint] = {}
        unknown: list[AlbService] = []
        retry_after: list[float] = []
        for service, answer in zip(asked, answers):
            if isinstance(answer, Unknown):
                _not_yet(describe, service, answer)
                unknown.append(service)
                retry_after.append(answer.retry_after)
                continue
            if service.container_key is not None:
                endpoints[service.container_key] = answer.endpoint
            if not state.vouched:
                continue
            alb = alb_registration(service.record, answer.endpoint, InstanceStatus.UP, min_renewal=self.min_renewal)
            for problem in sorted(set(alb.problems) - set(service.problems)):
                log.error("%s", problem)
            members.setdefault(keys.instance_key(alb.app, alb.instance_id),
                               AlbMember(alb.document, answer.endpoint, answer.healthy_targets))
        if unknown:
            self.store.retry_pending(source, min(retry_after))
        return AlbPlan(members, endpoints, _own_keys(unknown), settled=not unknown)

    def converge(self, source: str, plan: AlbPlan) -> None:
        """Join the ALBs of `plan`; once it is settled, leave every other one."""
        for key, member in sorted(plan.members.items()):
            self.records.join(key, source, member)
        if plan.settled:
            for key in sorted(self.store.source_albs(source) - set(plan.members)):
                self.records.leave(key, source)


def _not_yet(describe: str, service: AlbService, answer: Unknown) -> None:
    log.info("%s: the ALB of service %s is not known yet: %s; trying again in %.0fs", describe,
             service.record.service_id, answer.reason, answer.retry_after)


def _own_keys(services: list[AlbService]) -> frozenset[str]:
    return frozenset(service.container_key for service in services if service.container_key is not None)
