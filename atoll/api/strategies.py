"""What the API server asks of each kind: defaults, preparation, validation, generation.

This is the public face of :mod:`atoll.api.kinds` (one module per API area). Use::

    strategy = strategy_for(info)
    causes = strategy.before_create(obj, namespace=ns)      # the whole kube create sequence
    if causes:
        raise invalid(info.kind, name, causes, group=info.group)

or call the steps one by one (``default``, ``prepare_for_create``, ``validate``,
``prepare_for_update``, ``prepare_for_status_update``, ``validate_update``,
``spec_changed``); the order kube-apiserver uses is documented in
:mod:`atoll.api.kinds.base`. Objects are plain dicts the caller owns; strategies
mutate them in place.
"""

from __future__ import annotations

from atoll.api.kinds import BUILTIN_STRATEGIES, strategy_class, strategy_for
from atoll.api.kinds.base import CustomResourceStrategy, PathSegmentNameStrategy, ReviewStrategy, Strategy
from atoll.api.kinds.podspec import image_pull_policy, pod_qos_class
from atoll.api.meta import Cause

__all__ = [
    "BUILTIN_STRATEGIES",
    "Cause",
    "CustomResourceStrategy",
    "PathSegmentNameStrategy",
    "ReviewStrategy",
    "Strategy",
    "image_pull_policy",
    "pod_qos_class",
    "strategy_class",
    "strategy_for",
]
